"""GET /admin/paints/facets (counts by brand, family and type under the
list's filters, each facet without its own) and low stock (a paint's own
threshold or LOW_STOCK_THRESHOLD; ?low_stock=, "low_stock" in every
paint, the gauge, the alert and /admin/metrics)."""
import csv
import io
import json
import os
import re
import time
import unittest
import uuid
from urllib.parse import urlencode

import fcgi
from harness import stack
from test_basics import assert_problem

FACETS = ("brand", "color_family", "color_type")
DEFAULT = 5  # LOW_STOCK_THRESHOLD's default: the stack does not set it
LOW_SQL = ("((low_stock_threshold IS NULL AND stock <= {d} AND {d} > 0) OR "
           "(low_stock_threshold IS NOT NULL AND low_stock_threshold > 0 AND stock <= low_stock_threshold))")


def q(v):
    return "'" + str(v).replace("'", "''") + "'"


def where_of(params, skip=None, default=DEFAULT):
    """The SQL condition of the list's filters in params, less skip's."""
    conds = ["true"]
    for k, v in params.items():
        if k == skip:
            continue
        if k in FACETS:
            conds.append(f"{k} = {q(v)}")
        elif k == "in_stock":
            conds.append("stock > 0" if v in ("true", "1") else "stock = 0")
        elif k == "low_stock":
            low = LOW_SQL.format(d=default)
            conds.append(low if v in ("true", "1") else f"NOT {low}")
        elif k == "q":
            pat = "%" + v.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            conds.append(f"(name ILIKE {q(pat)} OR brand ILIKE {q(pat)} OR color_code ILIKE {q(pat)})")
        elif k == "min_price":
            conds.append(f"price >= {v}")
        elif k == "max_price":
            conds.append(f"price <= {v}")
    return " AND ".join(conds)


def sql_facets(params):
    """What the facets must be, from PostgreSQL itself."""
    s = stack()
    want = {"total": int(s.psql(f"SELECT count(*) FROM paints WHERE {where_of(params)}"))}
    for f in FACETS:
        out = s.psql(f"SELECT json_agg(json_build_object('value', v, 'count', n) ORDER BY n DESC, v) "
                     f"FROM (SELECT {f} AS v, count(*) AS n FROM paints WHERE {where_of(params, f)} "
                     f"GROUP BY {f} ORDER BY n DESC, v LIMIT 200) x")
        want[f] = json.loads(out) if out else []
        want["more_" + f] = int(s.psql(f"SELECT count(DISTINCT {f}) FROM paints WHERE {where_of(params, f)}")) > 200
    return want


def facets(params, **kw):
    r = stack().get("/admin/paints/facets?" + urlencode(params), **kw)
    assert r.status == 200, r
    return r.json()


def new_paint(**kw):
    r = stack().request("POST", "/admin/paints", body=dict({"name": "Facet test"}, **kw))
    assert r.status == 201, r
    return r.json()


def tag():
    return "fx-" + uuid.uuid4().hex[:10]


class Counts(unittest.TestCase):
    def test_counts_equal_sql_group_by(self):
        for params in ({}, {"brand": "Golden"}, {"color_family": "Blue", "in_stock": "true"},
                       {"brand": "Golden", "color_family": "Red", "color_type": "Oil"},
                       {"q": "red", "min_price": "10", "max_price": "30"},
                       {"low_stock": "true"}, {"low_stock": "0", "color_type": "Acrylic"},
                       {"in_stock": "false", "brand": "Vallejo"}):
            with self.subTest(params=params):
                got = facets(params)
                want = sql_facets(params)
                self.assertEqual(got["total"], want["total"])
                for f in FACETS:
                    self.assertEqual(got[f], want[f], f)
                    self.assertEqual(got["more"][f], want["more_" + f])

    def test_disjunctive_a_facets_own_filter_is_ignored_for_its_counts(self):
        both = facets({"brand": "Golden", "color_family": "Blue"})
        family_only = facets({"color_family": "Blue"})
        brand_only = facets({"brand": "Golden"})
        # the brands under Blue, whichever brand is picked; the families under Golden
        self.assertEqual(both["brand"], family_only["brand"])
        self.assertEqual(both["color_family"], brand_only["color_family"])
        golden = [v["count"] for v in both["brand"] if v["value"] == "Golden"]
        self.assertEqual(golden, [both["total"]])

    def test_total_is_what_the_list_pages_through(self):
        t = tag()
        for i in range(7):
            new_paint(name=f"walk {i}", brand=t, stock=i)
        for params in ({"brand": t}, {"brand": t, "in_stock": "true"}, {"brand": t, "low_stock": "1"}):
            with self.subTest(params=params):
                items = stack().get("/admin/paints?" + urlencode(dict(params, limit=200))).json()["items"]
                self.assertEqual(facets(params)["total"], len(items))

    def test_at_most_200_values_then_more(self):
        t = tag()
        # straight into PostgreSQL: a query (q) no page was ever cached under
        stack().psql(f"INSERT INTO paints (name, brand) SELECT '{t} ' || g, '{t}-' || lpad(g::text, 3, '0') "
                     f"FROM generate_series(1, 205) g")
        # a write through the service bumps the pages' generation, as the insert above did not
        p = new_paint()
        stack().request("DELETE", f"/admin/paints/{p['id']}")
        got = facets({"q": t})
        self.assertEqual(got["total"], 205)
        self.assertEqual(len(got["brand"]), 200)
        self.assertTrue(got["more"]["brand"])
        self.assertFalse(got["more"]["color_family"])
        self.assertEqual(got["brand"][0], {"value": f"{t}-001", "count": 1})  # ties by value
        self.assertEqual(got["color_family"], [{"value": "", "count": 205}])

    def test_the_lists_400s_and_no_pages(self):
        for params in ({"limit": "10"}, {"cursor": "abc"}, {"in_stock": "yes"}, {"low_stock": "2"},
                       {"brand": ""}, {"colour": "red"}, {"sort": "colour"}, {"min_price": "1e3"}):
            with self.subTest(params=params):
                body = assert_problem(self, stack().get("/admin/paints/facets?" + urlencode(params)), 400)
                self.assertEqual(list(body["errors"]), list(params))
        self.assertEqual(stack().get("/admin/paints/facets?sort=-price").status, 200)
        self.assertEqual(stack().get("/admin/paints/facets", auth=False).status, 401)

    def test_etag_and_304(self):
        url = "/admin/paints/facets?color_family=Green"
        r = stack().get(url)
        self.assertEqual(r.headers["cache-control"], "private, no-cache")
        self.assertEqual(stack().get(url, headers={"If-None-Match": r.headers["etag"]}).status, 304)


class CacheExact(unittest.TestCase):
    """A write acknowledged before a facets read is in it, on either process."""

    def setUp(self):
        s = stack()
        s.get("/auth/me")
        self.cookie, self.csrf = s.session
        self.host = f"127.0.0.1:{s.https_port}"
        self.socks = [os.path.join(s.dir, "run", f"app-{i}.sock") for i in range(1, s.processes + 1)]

    def fc(self, proc, method, uri, body=b""):
        r = fcgi.request(self.socks[proc % len(self.socks)], method, uri, body=body, host=self.host,
                         headers={"Cookie": self.cookie, "Origin": "https://" + self.host,
                                  "X-CSRF-Token": self.csrf if method != "GET" else None})
        self.assertLess(r.status, 300, r)
        return r

    def read(self, proc, params):
        return json.loads(self.fc(proc, "GET", "/admin/paints/facets?" + urlencode(params)).body)

    def test_write_then_read_at_once_on_every_process(self):
        t = tag()
        pids, hits = [], 0
        views = ({"brand": t}, {"brand": t, "low_stock": "true"}, {"color_family": t})
        for round_ in range(12):
            writer, reader = round_ % 2, (round_ + 1) % 2
            # every view cached on both processes first
            for proc in (0, 1):
                for v in views:
                    self.read(proc, v)
                    r = self.fc(proc, "GET", "/admin/paints/facets?" + urlencode(v))
                    hits += r.headers.get("x-cache") == "hit"
            if round_ % 3 == 2 and pids:
                self.fc(writer, "DELETE", f"/admin/paints/{pids.pop()}")
            elif round_ % 3 == 1 and pids:
                self.fc(writer, "POST", f"/admin/paints/{pids[-1]}/stock", body={"delta": 10})
            else:
                pids.append(json.loads(self.fc(writer, "POST", "/admin/paints", body={
                    "name": f"exact {round_}", "brand": t, "color_family": t, "stock": 1}).body)["id"])
            low = int(stack().psql(f"SELECT count(*) FROM paints WHERE brand = {q(t)} AND {LOW_SQL.format(d=DEFAULT)}"))
            for proc in (reader, writer):
                self.assertEqual(self.read(proc, views[0])["total"], len(pids), f"round {round_}")
                self.assertEqual(self.read(proc, views[1])["total"], low, f"round {round_}")
                fam = self.read(proc, views[2])
                self.assertEqual(fam["brand"], [{"value": t, "count": len(pids)}] if pids else [])
        self.assertGreater(hits, 0, "the facets were never served from the cache")


class LowStock(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.brand = tag()
        # (stock, own threshold or None, low with the default of 5?)
        cls.cases = [(0, None, True), (5, None, True), (6, None, False), (20, 25, True),
                     (25, 25, True), (26, 25, False), (0, 0, False), (3, 2, False), (1000, 1000000, True)]
        cls.paints = []
        for stock, own, low in cls.cases:
            body = {"name": f"low {stock}/{own}", "brand": cls.brand, "stock": stock}
            if own is not None:
                body["low_stock_threshold"] = own
            cls.paints.append((new_paint(**body), low))

    def ids(self, **params):
        r = stack().get("/admin/paints?" + urlencode(dict(params, brand=self.brand, limit=200)))
        self.assertEqual(r.status, 200, r)
        return {p["id"]: p for p in r.json()["items"]}

    def test_flag_and_filter(self):
        every = self.ids()
        for p, low in self.paints:
            self.assertIs(every[p["id"]]["low_stock"], low, p)
            self.assertIs(p["low_stock"], low)
            self.assertEqual(stack().get(f"/admin/paints/{p['id']}").json()["low_stock"], low)
        want = {p["id"] for p, low in self.paints if low}
        for v in ("true", "1"):
            self.assertEqual(set(self.ids(low_stock=v)), want)
        for v in ("false", "0"):
            self.assertEqual(set(self.ids(low_stock=v)), {p["id"] for p, _ in self.paints} - want)
        self.assertEqual(facets({"brand": self.brand, "low_stock": "true"})["total"], len(want))

    def test_threshold_validation(self):
        p = self.paints[0][0]
        for bad in (-1, 1000001, 2.5, "3", True, [1]):
            with self.subTest(bad=bad):
                r = stack().request("PATCH", f"/admin/paints/{p['id']}", body={"low_stock_threshold": bad})
                body = assert_problem(self, r, 422)
                self.assertIn("low_stock_threshold", body["errors"])
                r = stack().request("POST", "/admin/paints", body={"name": "x", "low_stock_threshold": bad})
                assert_problem(self, r, 422)
        # the database's own CHECK, for writers other than the service
        with self.assertRaises(RuntimeError):
            stack().psql(f"UPDATE paints SET low_stock_threshold = -1 WHERE id = {p['id']}")

    def test_patch_put_and_audit(self):
        p = new_paint(brand=self.brand + "-edit", stock=8)
        self.assertIsNone(p["low_stock_threshold"])
        self.assertFalse(p["low_stock"])
        r = stack().request("PATCH", f"/admin/paints/{p['id']}", body={"low_stock_threshold": 10})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["low_stock_threshold"], r.json()["low_stock"]), (10, True))
        # a GET's body sent back (low_stock included) keeps it
        back = stack().get(f"/admin/paints/{p['id']}").json()
        r = stack().request("PUT", f"/admin/paints/{p['id']}", body=back)
        self.assertEqual((r.json()["low_stock_threshold"], r.json()["low_stock"]), (10, True))
        r = stack().request("PATCH", f"/admin/paints/{p['id']}", body={"low_stock_threshold": None})
        self.assertEqual((r.json()["low_stock_threshold"], r.json()["low_stock"]), (None, False))
        entries = stack().get(f"/admin/audit?paint={p['id']}").json()["items"]
        changes = [e["changes"].get("low_stock_threshold") for e in entries]
        self.assertIn({"old": 10, "new": None}, changes)
        self.assertIn({"old": None, "new": 10}, changes)

    def test_export_has_the_column_last(self):
        r = stack().get("/admin/paints/export.csv?" + urlencode({"brand": self.brand, "sort": "stock"}))
        self.assertEqual(r.status, 200, r)
        rows = list(csv.reader(io.StringIO(r.body.decode("utf-8-sig"), newline="")))
        self.assertEqual(rows[0][-2:], ["version", "low_stock_threshold"])
        got = {int(row[0]): row[-1] for row in rows[1:]}
        for p, _ in self.paints:
            own = p["low_stock_threshold"]
            self.assertEqual(got[p["id"]], "" if own is None else str(own))
        self.assertEqual(stack().get("/admin/paints/export.csv?low_stock=true&brand=" + self.brand).status, 200)

    def test_gauge_alert_and_dashboard(self):
        s = stack()
        want = int(s.psql(f"SELECT count(*) FROM paints WHERE {LOW_SQL.format(d=DEFAULT)}"))

        def firing_lines():
            return {path: sum(1 for ln in text.splitlines() if '"alert firing"' in ln and '"low_stock"' in ln)
                    for path, text in s.logs()}
        # the suite shares its stack: earlier tests' crossings are in the logs already
        before = firing_lines()

        def sampled():
            seen = {}
            for sock in (os.path.join(s.dir, "run", f"app-{i}.sock") for i in range(1, s.processes + 1)):
                text = fcgi.request(sock, "GET", "/metrics", extra={"LISTENER_LOCAL": "1"}).body.decode()
                m = re.search(r"^paintstudio_paints_low_stock (\d+)$", text, re.M)
                seen[sock] = (int(m.group(1)) if m else None,
                              'paintstudio_alert_firing{alert="low_stock"} 1' in text)
            return all(v == (want, True) for v in seen.values()) and seen
        s.wait_until(sampled, timeout=20, what=f"paintstudio_paints_low_stock {want} on every process")
        m = s.get("/admin/metrics").json()
        self.assertEqual(m["low_stock"]["count"], want)
        self.assertEqual(m["low_stock"]["default_threshold"], DEFAULT)
        lowest = m["low_stock"]["lowest"]
        self.assertEqual(len(lowest), min(10, want))
        self.assertEqual([(x["stock"], x["id"]) for x in lowest], sorted((x["stock"], x["id"]) for x in lowest))
        self.assertTrue(all(x["stock"] <= x["threshold"] for x in lowest))
        self.assertIn("low_stock", [a["alert"] for a in m["alerts"]])
        # the crossing is logged once per process, not once per sample (several
        # samples were taken while this test waited and read)
        for path, n in firing_lines().items():
            self.assertLessEqual(n - before.get(path, 0), 1, path)

    def test_default_threshold_setting(self):
        """LOW_STOCK_THRESHOLD=0: paints on the default are never low; their own still count."""
        restore = stack().restart_apps(LOW_STOCK_THRESHOLD=0)
        try:
            got = self.ids()
            for (stock, own, _), (p, _) in zip(self.cases, self.paints):
                self.assertIs(got[p["id"]]["low_stock"], own is not None and 0 < own and stock <= own, p)
            want = {p["id"] for (stock, own, _), (p, _) in zip(self.cases, self.paints)
                    if own is not None and 0 < own and stock <= own}
            self.assertEqual(set(self.ids(low_stock="true")), want)
            self.assertEqual(stack().get("/admin/metrics").json()["low_stock"]["default_threshold"], 0)
        finally:
            restore()
        self.assertTrue(stack().get(f"/admin/paints/{self.paints[0][0]['id']}").json()["low_stock"])


if __name__ == "__main__":
    unittest.main()
