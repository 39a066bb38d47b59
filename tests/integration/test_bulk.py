"""POST /admin/paints/bulk and its undo through nginx: a preview writes
nothing; a bulk edit by ids and by filter, set and add, applied in one
transaction with an audit entry per changed paint tied to its operation;
unchanged paints not written; bounds and bad bodies refused whole; reads
right after the answer see it (cache); the undo restores, skips and lists
paints changed or deleted since, and is refused twice, for an import and
for an undo; races with single PATCHes and stock changes, an undo racing
PATCHes, and an import racing a bulk edit, violations counted and held
at 0."""
import threading
import time
import random
import subprocess
import unittest
import urllib.parse
import uuid

from harness import stack
from test_basics import assert_problem
from test_import import export, imp, state, to_csv
from test_paints_api import new_paint


def bulk(body, preview=False, **kw):
    return stack().request("POST", "/admin/paints/bulk" + ("?preview=1" if preview else ""),
                           body=body, **kw)


def undo(op, **kw):
    return stack().request("POST", f"/admin/paints/bulk/{op}/undo", **kw)


def brand():
    return "Bulk " + uuid.uuid4().hex[:10]


def audit_count():
    return int(stack().psql("SELECT count(*) FROM audit_log"))


def paint(pid):
    r = stack().get(f"/admin/paints/{pid}")
    assert r.status == 200, r
    return r.json()


def entries(op):
    r = stack().get(f"/admin/audit?operation={op}&limit=200")
    assert r.status == 200, r
    return r.json()["items"]


class PreviewAndApply(unittest.TestCase):
    def setUp(self):
        self.brand = brand()
        self.p = [new_paint(brand=self.brand, price=10 + i, stock=i) for i in range(3)]
        self.ids = [p["id"] for p in self.p]

    def test_preview_writes_nothing(self):
        before, n = state(self.ids), audit_count()
        r = bulk({"ids": list(reversed(self.ids)), "set": {"price": 11}}, preview=True)
        self.assertEqual(r.status, 200, r)
        o = r.json()
        self.assertEqual((o["count"], o["matched"], o["unchanged"]), (2, 3, 1))
        # in the order given, each as the list shows it, with before and after
        self.assertEqual([x["id"] for x in o["sample"]], list(reversed(self.ids)))
        self.assertEqual(o["sample"][0]["name"], self.p[2]["name"])
        self.assertEqual(o["sample"][0]["before"], {"price": 12})
        self.assertEqual(o["sample"][0]["after"], {"price": 11})
        self.assertEqual(state(self.ids), before)
        self.assertEqual(audit_count(), n)
        self.assertEqual(int(stack().psql("SELECT count(*) FROM operations WHERE summary::text LIKE "
                                          f"'%{self.brand}%'")), 0)

    def test_preview_by_filter_in_the_lists_order(self):
        r = bulk({"filter": {"brand": self.brand, "sort": "-price"}, "add": {"stock": 1}}, preview=True)
        self.assertEqual(r.status, 200, r)
        self.assertEqual([x["id"] for x in r.json()["sample"]], list(reversed(self.ids)))
        self.assertEqual(r.json()["sample"][2]["after"], {"stock": 1})

    def test_set_by_ids_with_audit_and_operation(self):
        r = bulk({"ids": self.ids, "set": {"price": 11, "description": "bulk set"}})
        self.assertEqual(r.status, 200, r)
        o = r.json()
        self.assertEqual((o["count"], o["unchanged"]), (3, 0))
        for p in self.p:
            now = paint(p["id"])
            self.assertEqual((now["price"], now["description"]), (11, "bulk set"))
            self.assertEqual(now["version"], p["version"] + 1)
        items = entries(o["id"])
        self.assertEqual(sorted(e["entity_id"] for e in items), sorted(self.ids))
        for e in items:
            self.assertEqual((e["action"], e["operation_id"]), ("bulk", o["id"]))
            self.assertEqual(e["changes"]["description"]["new"], "bulk set")
            self.assertEqual(e["changes"]["version"]["new"], e["changes"]["version"]["old"] + 1)
        e = next(e for e in items if e["entity_id"] == self.ids[0])
        self.assertEqual(e["changes"]["price"], {"old": 10, "new": 11})
        kind, summary = stack().psql(f"SELECT kind, summary::text FROM operations WHERE id = {o['id']}").split("|")
        self.assertEqual(kind, "bulk")
        self.assertIn('"count": 3', summary)

    def test_unchanged_paints_are_not_written(self):
        r = bulk({"ids": self.ids, "set": {"price": 10}})
        self.assertEqual((r.status, r.json()["count"], r.json()["unchanged"]), (200, 2, 1), r)
        self.assertEqual(paint(self.ids[0])["version"], self.p[0]["version"])
        self.assertEqual(len(entries(r.json()["id"])), 2)
        r = bulk({"ids": self.ids, "set": {"price": 10}})  # nothing to change: nothing written
        self.assertEqual(r.json(), {"id": None, "count": 0, "unchanged": 3})

    def test_add_by_filter(self):
        r = bulk({"filter": {"brand": self.brand, "min_price": 11}, "add": {"stock": 5, "price": -0.5}})
        self.assertEqual((r.status, r.json()["count"]), (200, 2), r)
        self.assertEqual([(paint(i)["stock"], paint(i)["price"]) for i in self.ids],
                         [(0, 10), (6, 10.5), (7, 11.5)])

    def test_bounds_refuse_the_whole_edit(self):
        before = state(self.ids)
        r = bulk({"ids": self.ids, "add": {"stock": -1}})
        assert_problem(self, r, 422)
        self.assertEqual((r.json()["out_of_bounds"], r.json()["count"]), ([self.ids[0]], 1))
        r = bulk({"ids": self.ids, "add": {"price": 99999989}}, preview=True)
        assert_problem(self, r, 422)
        self.assertEqual(r.json()["count"], 2)
        self.assertEqual(state(self.ids), before)

    def test_reads_after_the_answer_see_it(self):
        s = stack()
        page = "/admin/paints?brand=" + urllib.parse.quote(self.brand)
        for _ in range(2):  # the second reads come from the cache
            s.get(f"/admin/paints/{self.ids[0]}"), s.get(page)
        r = bulk({"filter": {"brand": self.brand}, "set": {"price": 3.25}})
        self.assertEqual(r.status, 200, r)
        for _ in range(3):
            self.assertEqual(s.get(f"/admin/paints/{self.ids[0]}").json()["price"], 3.25)
            self.assertEqual([x["price"] for x in s.get(page).json()["items"]], [3.25] * 3)
        u = undo(r.json()["id"])
        self.assertEqual(u.status, 200, u)
        for _ in range(3):
            self.assertEqual(s.get(f"/admin/paints/{self.ids[0]}").json()["price"], 10)
            self.assertEqual(sorted(x["price"] for x in s.get(page).json()["items"]), [10, 11, 12])


class Refused(unittest.TestCase):
    def test_bad_bodies(self):
        p = new_paint()
        for body, field in [
            ({"ids": [p["id"]]}, "set"),
            ({"set": {"price": 1}}, "ids"),
            ({"ids": [p["id"]], "filter": {}, "set": {"price": 1}}, "ids"),
            ({"ids": [p["id"]], "set": {"price": 1}, "add": {"stock": 1}}, "set"),
            ({"ids": [], "set": {"price": 1}}, "ids"),
            ({"ids": [0], "set": {"price": 1}}, "ids"),
            ({"ids": ["1"], "set": {"price": 1}}, "ids"),
            ({"ids": list(range(1, 10002)), "set": {"price": 1}}, "ids"),
            ({"ids": [p["id"]], "set": {"price": 1.234}}, "set.price"),
            ({"ids": [p["id"]], "set": {"name": ""}}, "set.name"),
            ({"ids": [p["id"]], "set": {"colour": "x"}}, "set.colour"),
            ({"ids": [p["id"]], "set": {}}, "set"),
            ({"ids": [p["id"]], "add": {"name": 1}}, "add.name"),
            ({"ids": [p["id"]], "add": {"stock": 0}}, "add.stock"),
            ({"ids": [p["id"]], "add": {"stock": 1.5}}, "add.stock"),
            ({"ids": [p["id"]], "add": {"price": 0.001}}, "add.price"),
            ({"ids": [p["id"]], "set": {"price": 1}, "extra": 1}, "extra"),
            ({"filter": {"colour": "Red"}, "set": {"price": 1}}, "filter.colour"),
            ({"filter": {"min_price": "abc"}, "set": {"price": 1}}, "filter.min_price"),
            ({"filter": {"limit": 5}, "set": {"price": 1}}, "filter.limit"),
            ({"filter": {"brand": ["a"]}, "set": {"price": 1}}, "filter"),
        ]:
            before = state([p["id"]])
            r = bulk(body)
            assert_problem(self, r, 422)
            self.assertIn(field, r.json()["errors"], (body, r.json()))
            self.assertEqual(state([p["id"]]), before)

    def test_unknown_ids_listed(self):
        p = new_paint()
        r = bulk({"ids": [p["id"], 9000000000000000001], "set": {"price": 1}})
        assert_problem(self, r, 422)
        self.assertEqual(r.json()["unknown"], [9000000000000000001])

    def test_query_and_type(self):
        p = new_paint()
        assert_problem(self, stack().request("POST", "/admin/paints/bulk?preview=2",
                                             body={"ids": [p["id"]], "set": {"price": 1}}), 400)
        assert_problem(self, stack().request("POST", "/admin/paints/bulk", body=b"ids=1",
                                             headers={"Content-Type": "text/plain"}), 415)
        r = stack().request("POST", "/admin/paints/bulk", body={"ids": [p["id"]], "set": {"price": 1}},
                            headers={"X-CSRF-Token": "wrong"})
        self.assertEqual(r.status, 403, r)

    def test_10000_ids_fit_and_a_filter_over_10000_is_refused_with_its_count(self):
        b = brand()
        stack().psql(f"INSERT INTO paints (name, brand) SELECT 'many ' || g, '{b}' "
                     "FROM generate_series(1, 10001) g")
        try:
            r = bulk({"filter": {"brand": b}, "set": {"price": 1}}, preview=True)
            assert_problem(self, r, 422)
            self.assertEqual(r.json()["count"], 10001)
            ids = [int(x) for x in stack().psql(
                f"SELECT string_agg(id::text, ',') FROM (SELECT id FROM paints WHERE brand = '{b}' "
                "ORDER BY id DESC LIMIT 10000) x").split(",")]
            r = bulk({"ids": ids, "add": {"stock": 1}}, preview=True)
            self.assertEqual((r.status, r.json()["count"]), (200, 10000), r)
        finally:
            stack().psql(f"DELETE FROM paints WHERE brand = '{b}'")


class FilterAtTheLock(unittest.TestCase):
    def test_a_paint_taken_out_of_the_filter_while_the_edit_waits_is_left_alone(self):
        b = brand()
        ps = [new_paint(brand=b, stock=1) for _ in range(3)]
        # another transaction holds paint 0's row and moves it to another brand
        holder = subprocess.Popen(["psql", stack().settings["DATABASE_URL"], "-qAtX"], text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        holder.stdin.write(f"BEGIN; UPDATE paints SET brand = 'moved {b}' WHERE id = {ps[0]['id']}; "
                           "SELECT 'held';\n")
        holder.stdin.flush()
        self.assertEqual(holder.stdout.readline().strip(), "held")
        res = {}
        t = threading.Thread(target=lambda: res.update(r=bulk({"filter": {"brand": b}, "add": {"stock": 1}})))
        t.start()
        time.sleep(0.5)  # the edit chose the three paints and waits for the row
        self.assertTrue(t.is_alive())
        holder.stdin.write("COMMIT;\n")
        holder.stdin.close()
        holder.wait(timeout=10)
        t.join(timeout=30)
        self.assertEqual((res["r"].status, res["r"].json()["count"]), (200, 2), res["r"])
        self.assertEqual(stack().psql(f"SELECT string_agg(stock::text, ',' ORDER BY id) FROM paints "
                                      f"WHERE id IN ({','.join(str(p['id']) for p in ps)})"), "1,2,2")


class Undo(unittest.TestCase):
    def test_restores_then_refuses_twice(self):
        ps = [new_paint(brand=brand(), price=5, description="orig") for _ in range(3)]
        ids = [p["id"] for p in ps]
        op = bulk({"ids": ids, "set": {"price": 6, "description": "new"}}).json()["id"]
        u = undo(op)
        self.assertEqual(u.status, 200, u)
        o = u.json()
        self.assertEqual((o["undoes"], o["count"], o["skipped"], o["skipped_count"]), (op, 3, [], 0))
        for p in ps:
            now = paint(p["id"])
            self.assertEqual((now["price"], now["description"], now["version"]),
                             (5, "orig", p["version"] + 2))
        items = entries(o["id"])
        self.assertEqual({e["action"] for e in items}, {"undo"})
        self.assertEqual(items[0]["changes"]["price"], {"old": 6, "new": 5})
        self.assertIn(f'"undoes": {op}', stack().psql(f"SELECT summary::text FROM operations WHERE id = {o['id']}"))
        assert_problem(self, undo(op), 409)
        assert_problem(self, undo(o["id"]), 422)  # an undo is not undone
        assert_problem(self, undo(9000000000000000000), 404)
        assert_problem(self, undo("abc"), 400)

    def test_an_import_is_not_undone(self):
        p = new_paint(price=5)
        rows = export([p["id"]])
        rows[0]["price"] = "7.00"
        r = imp(to_csv(rows, ["id", "price"]))
        self.assertEqual(r.status, 200, r)
        assert_problem(self, undo(r.json()["import_id"]), 422)

    def test_skips_paints_changed_or_deleted_since(self):
        ps = [new_paint(brand=brand(), price=5) for _ in range(4)]
        ids = [p["id"] for p in ps]
        op = bulk({"ids": ids, "add": {"price": 1}}).json()["id"]
        self.assertEqual(stack().request("PATCH", f"/admin/paints/{ids[1]}", body={"price": 9}).status, 200)
        self.assertEqual(stack().request("PATCH", f"/admin/paints/{ids[2]}", body={"name": "renamed"}).status, 200)
        self.assertEqual(stack().request("DELETE", f"/admin/paints/{ids[3]}").status, 204)
        u = undo(op)
        self.assertEqual(u.status, 200, u)
        o = u.json()
        self.assertEqual(o["count"], 1)
        self.assertEqual(o["skipped"], [
            {"id": ids[1], "reason": "changed", "version": ps[1]["version"] + 2},
            {"id": ids[2], "reason": "changed", "version": ps[2]["version"] + 2},
            {"id": ids[3], "reason": "deleted", "version": None}])
        self.assertEqual(o["skipped_count"], 3)
        self.assertEqual([paint(i)["price"] for i in ids[:3]], [5, 9, 6])
        self.assertEqual(paint(ids[2])["name"], "renamed")


class Races(unittest.TestCase):
    def test_bulk_edit_racing_20_single_writes_loses_none(self):
        s = stack()
        violations = 0
        for round_ in range(4):
            b = brand()
            ps = [new_paint(brand=b, stock=100, description="d") for _ in range(10)]
            ids = [p["id"] for p in ps]
            res, errors = {}, []

            def do_bulk():
                res["bulk"] = bulk({"filter": {"brand": b}, "add": {"stock": 5}})

            def do_single(k):
                time.sleep(random.random() * 0.03 * round_)
                pid = ids[k % 10]
                if k < 10:
                    r = s.request("PATCH", f"/admin/paints/{pid}", body={"description": f"p{round_}"})
                else:
                    r = s.request("POST", f"/admin/paints/{pid}/stock", body={"delta": 1})
                if r.status != 200:
                    errors.append(r)
            ts = [threading.Thread(target=do_single, args=(k,)) for k in range(20)]
            ts.insert(round_ % 3 * 5, threading.Thread(target=do_bulk))
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            self.assertEqual(errors, [])
            self.assertEqual((res["bulk"].status, res["bulk"].json()["count"]), (200, 10), res["bulk"])
            for p in ps:
                now = paint(p["id"])
                violations += now["stock"] != 106  # the bulk's +5 and the stock change's +1
                violations += now["description"] != f"p{round_}"
                violations += now["version"] != p["version"] + 3
        print(f"\nbulk vs 20 single writes: violations {violations}", flush=True)
        self.assertEqual(violations, 0)

    def test_undo_racing_patches_never_overwrites_them(self):
        s = stack()
        violations, outcomes = 0, {"restored": 0, "skipped": 0}
        for round_ in range(6):
            ps = [new_paint(brand=brand(), price=5) for _ in range(5)]
            ids = [p["id"] for p in ps]
            op = bulk({"ids": ids, "set": {"price": 6}}).json()["id"]
            res = {}

            def do_undo():
                res["undo"] = undo(op)

            def do_patch(pid):
                time.sleep(random.random() * 0.02 * (round_ % 3))
                res[pid] = s.request("PATCH", f"/admin/paints/{pid}", body={"price": 8})
            ts = [threading.Thread(target=do_undo)] + [
                threading.Thread(target=do_patch, args=(i,)) for i in ids]
            for t in (ts[1:] + ts[:1]) if round_ % 2 else ts:
                t.start()
            for t in ts:
                t.join()
            self.assertEqual(res["undo"].status, 200, res["undo"])
            skipped = {x["id"] for x in res["undo"].json()["skipped"]}
            for i in ids:
                self.assertEqual(res[i].status, 200, res[i])
                violations += paint(i)["price"] != 8  # the PATCH always stands
                outcomes["skipped" if i in skipped else "restored"] += 1
        print(f"\nundo vs PATCH: {outcomes}, violations {violations}", flush=True)
        self.assertEqual(violations, 0)

    def test_an_import_racing_a_bulk_edit_serialises(self):
        violations = 0
        for round_ in range(6):
            ps = [new_paint(brand=brand(), price=5, stock=10) for _ in range(5)]
            ids = [p["id"] for p in ps]
            rows = export(ids)
            for row in rows:
                row["price"] = "7.00"
            text = to_csv(rows, ["id", "price"])
            res = {}

            def do_import():
                res["import"] = imp(text)

            def do_bulk():
                time.sleep(random.random() * 0.02 * (round_ % 3))
                res["bulk"] = bulk({"ids": ids, "add": {"stock": 3}})
            ts = [threading.Thread(target=do_import), threading.Thread(target=do_bulk)]
            for t in (ts[::-1] if round_ % 2 else ts):
                t.start()
            for t in ts:
                t.join()
            self.assertEqual(res["import"].status, 200, res["import"])
            self.assertEqual(res["bulk"].status, 200, res["bulk"])
            for p in ps:
                now = paint(p["id"])
                violations += (now["price"], now["stock"], now["version"]) != (7, 13, p["version"] + 2)
        print(f"\nimport vs bulk: violations {violations}", flush=True)
        self.assertEqual(violations, 0)
