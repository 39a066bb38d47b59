"""POST /admin/paints/import through nginx: a dry run's report and that it
writes nothing; an import applied in one transaction, its audit entries
tied to it; a re-import of the same file changing nothing; a file with bad
lines refused whole, every bad line reported at its physical line; header,
version, duplicate and matching errors; the content type, size and text
limits; formula cells; the cache after an import; a PATCH racing an
import; and 10,000 lines timed, with the processes' memory."""
import csv
import glob
import io
import json
import os
import random
import threading
import time
import unittest
import urllib.parse
import uuid

from harness import stack
from test_basics import assert_problem
from test_paints_api import new_paint

COLUMNS = ["id", "name", "brand", "color_code", "color_type", "color_family", "image_url",
           "stock", "price", "description", "color_preview", "created_at", "updated_at",
           "version"]
TEXT = {"name", "brand", "color_code", "color_type", "color_family", "image_url",
        "description", "color_preview"}


def neutralise(v):
    """As the export writes a text cell: a ' before one that could start a formula."""
    return "'" + v if v and v[0] in "=+-@\t\r'" else v


def to_csv(rows, columns=None):
    """rows (dicts) as CSV text with a header of columns (all of them by default)."""
    columns = columns or COLUMNS
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([neutralise(str(r.get(c, ""))) if c in TEXT else str(r.get(c, ""))
                    for c in columns])
    return out.getvalue().encode()


def export(ids):
    """The paints as the export has them (prices as exact decimals)."""
    out = stack().psql(
        "SELECT coalesce(json_agg(json_build_object('id', id, 'name', name, 'brand', brand, "
        "'color_code', color_code, 'color_type', color_type, 'color_family', color_family, "
        "'image_url', image_url, 'stock', stock, 'price', price::text, 'description', description, "
        "'color_preview', color_preview, 'created_at', created_at, 'updated_at', updated_at, "
        "'version', version) ORDER BY id), '[]') FROM paints "
        f"WHERE id IN ({','.join(str(int(i)) for i in ids)})")
    return json.loads(out)


def state(ids):
    """What PostgreSQL holds of the paints, for proof that nothing changed."""
    return stack().psql("SELECT string_agg(concat_ws('|', id, name, brand, color_code, stock, "
                        "price, description, version), E'\\n' ORDER BY id) FROM paints "
                        f"WHERE id IN ({','.join(str(int(i)) for i in ids)})")


def audit_count():
    return int(stack().psql("SELECT count(*) FROM audit_log WHERE entity = 'paint'"))


def imp(body, dry_run=False, ctype="text/csv", **kw):
    path = "/admin/paints/import" + ("?dry_run=1" if dry_run else "")
    return stack().request("POST", path, body=body, headers={"Content-Type": ctype}, **kw)


def brand():
    return "Imp " + uuid.uuid4().hex[:10]


def by_brand(b):
    return int(stack().psql(f"SELECT count(*) FROM paints WHERE brand = '{b}'"))


class DryRunAndApply(unittest.TestCase):
    def setUp(self):
        self.brand = brand()
        self.a = new_paint(brand=self.brand, color_code="A-1", price=10)
        self.b = new_paint(brand=self.brand, color_code="B-1", price=20)
        rows = export([self.a["id"], self.b["id"]])
        rows[1]["price"] = "21.50"
        rows.append({"name": "Imported new", "brand": self.brand, "color_code": "C-1",
                     "stock": "3", "price": "4.25", "color_preview": "#cccccc"})
        self.file = to_csv(rows)

    def test_dry_run_reports_and_writes_nothing(self):
        before, entries = state([self.a["id"], self.b["id"]]), audit_count()
        r = imp(self.file, dry_run=True)
        self.assertEqual(r.status, 200, r)
        rep = r.json()
        self.assertEqual(rep, {"import_id": None, "dry_run": True, "rows": 3, "create": 1,
                               "update": 1, "unchanged": 1, "errors": [], "error_count": 0})
        self.assertEqual(state([self.a["id"], self.b["id"]]), before)
        self.assertEqual(by_brand(self.brand), 2)
        self.assertEqual(audit_count(), entries)

    def test_apply_then_the_same_file_again_changes_nothing(self):
        r = imp(self.file)
        self.assertEqual(r.status, 200, r)
        rep = r.json()
        self.assertIsInstance(rep["import_id"], int)
        self.assertEqual((rep["dry_run"], rep["create"], rep["update"], rep["unchanged"]),
                         (False, 1, 1, 1))
        b = stack().get(f"/admin/paints/{self.b['id']}").json()
        self.assertEqual((b["price"], b["version"]), (21.5, 2))
        self.assertEqual(stack().get(f"/admin/paints/{self.a['id']}").json()["version"], 1)
        self.assertEqual(by_brand(self.brand), 3)
        # the audit entries name the import, and the list filters by it
        items = stack().get(f"/admin/audit?operation={rep['import_id']}").json()["items"]
        self.assertEqual(sorted(e["action"] for e in items), ["create", "import"])
        self.assertTrue(all(e["operation_id"] == rep["import_id"] for e in items))
        upd = [e for e in items if e["action"] == "import"][0]
        self.assertEqual((upd["entity_id"], upd["changes"]),
                         (self.b["id"], {"price": {"old": 20, "new": 21.5}}))
        self.assertEqual(stack().psql("SELECT kind, summary->>'update' FROM operations "
                                      f"WHERE id = {rep['import_id']}"), "import|1")
        # a fresh export of the three imports unchanged: no entry, no version moves
        ids = [int(x) for x in stack().psql(
            f"SELECT id FROM paints WHERE brand = '{self.brand}' ORDER BY id").split()]
        before, entries = state(ids), audit_count()
        r = imp(to_csv(export(ids)))
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["import_id"], r.json()["unchanged"], r.json()["update"]),
                         (None, 3, 0))
        self.assertEqual((state(ids), audit_count()), (before, entries))

    def test_the_exports_own_file_imports_unchanged(self):
        """GET /admin/paints/export.csv as it comes (a byte order mark, every
        column, low_stock_threshold too, which an import reads and leaves
        alone): importing it changes nothing, a threshold included."""
        s = stack()
        r = s.request("PATCH", f"/admin/paints/{self.a['id']}", body=json.dumps(
            {"low_stock_threshold": 7}).encode(), headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r)
        ids = [self.a["id"], self.b["id"]]
        r = s.get("/admin/paints/export.csv?" + urllib.parse.urlencode({"brand": self.brand}))
        self.assertEqual(r.status, 200, r)
        self.assertIn(b"low_stock_threshold", r.body.split(b"\r\n", 1)[0])
        before, entries = state(ids), audit_count()
        rep = imp(r.body)
        self.assertEqual(rep.status, 200, rep)
        self.assertEqual((rep.json()["import_id"], rep.json()["unchanged"]), (None, 2))
        self.assertEqual((state(ids), audit_count()), (before, entries))
        self.assertEqual(s.psql(f"SELECT low_stock_threshold FROM paints WHERE id = {self.a['id']}"), "7")

    def test_bad_query_parameter(self):
        r = stack().request("POST", "/admin/paints/import?dryrun=1", body=self.file,
                            headers={"Content-Type": "text/csv"})
        self.assertIn("dryrun", assert_problem(self, r, 400)["errors"])


class RefusedWhole(unittest.TestCase):
    def test_every_bad_line_at_its_physical_line(self):
        b = brand()
        p = new_paint(brand=b, color_code="X-1")
        q = new_paint(brand=b, color_code="X-2")
        absent = int(stack().psql("SELECT coalesce(max(id), 0) + 1000000 FROM paints"))
        text = ("name,brand,color_code,price,stock,description,id\r\n"
                f'Good one,{b},N-1,1.00,1,"two\nline\ndescription",\r\n'   # lines 2-4
                f"Bad price,{b},N-2,1.234,1,,\r\n"                        # line 5
                f"Bad stock,{b},N-3,1.00,1.5,,\r\n"                       # line 6
                f"Unknown id,{b},N-4,1.00,1,,{absent}\r\n"                # line 7
                f"First,{b},X-1,2.00,1,,{p['id']}\r\n"                    # line 8
                f'Second,{b},X-1,3.00,1,"quoted\r\nnewline",\r\n'         # lines 9-10: same paint
                f",{b},N-5,1.00,1,,\r\n"                                  # line 11: empty name
                f"Good two,{b},N-6,1.00,1,,{q['id']}\r\n")                # line 12
        before, entries = state([p["id"], q["id"]]), audit_count()
        r = imp(text.encode())
        body = assert_problem(self, r, 422)
        got = [(e["line"], e["field"]) for e in body["errors"]]
        self.assertEqual(got, [(5, "price"), (6, "stock"), (7, "id"), (9, "color_code"),
                               (11, "name")], body)
        self.assertEqual(body["error_count"], 5)
        self.assertIsNone(body["import_id"])
        self.assertIn("line 8", body["errors"][3]["message"])
        self.assertEqual((state([p["id"], q["id"]]), audit_count(), by_brand(b)),
                         (before, entries, 2))

    def test_unknown_and_repeated_columns_by_name(self):
        r = imp(b"name,colour,brand,name,size\r\nx,red,b,x,1\r\n")
        body = assert_problem(self, r, 400)
        self.assertEqual(set(body["errors"]), {"colour", "size", "name"})
        self.assertIn("more than once", body["errors"]["name"])
        self.assertIn("not a column", body["errors"]["colour"])

    def test_version_changed_since_export(self):
        p = new_paint(brand=brand())
        rows = export([p["id"]])
        r = stack().request("PATCH", f"/admin/paints/{p['id']}", body={"stock": 99})
        self.assertEqual(r.status, 200, r)
        rows[0]["price"] = "99.99"
        body = assert_problem(self, imp(to_csv(rows)), 422)
        (e,) = body["errors"]
        self.assertEqual((e["line"], e["field"]), (2, "version"))
        self.assertIn("changed since it was exported", e["message"])
        self.assertEqual(stack().get(f"/admin/paints/{p['id']}").json()["stock"], 99)

    def test_matching_by_brand_and_code(self):
        b = brand()
        one = new_paint(brand=b, color_code="ONE")
        new_paint(brand=b, color_code="TWO")
        new_paint(brand=b, color_code="TWO")
        text = to_csv([{"brand": b, "color_code": "ONE", "price": "7.00"},
                       {"brand": b, "color_code": "TWO", "price": "7.00"}],
                      ["brand", "color_code", "price"])
        body = assert_problem(self, imp(text), 422)
        self.assertEqual([(e["line"], e["field"]) for e in body["errors"]], [(3, "color_code")])
        self.assertIn("matches 2 paints", body["errors"][0]["message"])
        r = imp(text[:text.index(b"\r\n", text.index(b"ONE")) + 2])
        self.assertEqual((r.status, r.json()["update"]), (200, 1), r)
        self.assertEqual(stack().get(f"/admin/paints/{one['id']}").json()["price"], 7)

    def test_new_paint_needs_a_name_column(self):
        body = assert_problem(self, imp(f"brand,color_code\r\n{brand()},Z-9\r\n".encode()), 422)
        self.assertEqual([(e["line"], e["field"]) for e in body["errors"]], [(2, "name")])


class Limits(unittest.TestCase):
    def alive(self):
        s = stack()
        self.assertEqual(s.get("/healthz").status, 200)
        self.assertEqual(s.get("/admin/paints?limit=1").status, 200)

    def test_content_type(self):
        for ctype in ("application/json", "text/plain", "text/csv; charset=latin1", "text/csvx"):
            with self.subTest(ctype=ctype):
                assert_problem(self, imp(b"name\r\nx\r\n", ctype=ctype), 415)
        r = imp(b"name\r\n", ctype="text/csv; charset=utf-8")
        self.assertEqual(r.status, 200, r)

    def test_too_large(self):
        big = b"name,description\r\n" + (b"x," + b"y" * 4000 + b"\r\n") * 2200  # 8.8 MB
        r = imp(big)
        self.assertEqual(r.status, 413, r)
        self.alive()

    def test_too_many_lines(self):
        r = imp(b"name\r\n" + b"n\r\n" * 20001)
        self.assertIn("20000", assert_problem(self, r, 413)["detail"])
        self.alive()

    def test_broken_text(self):
        cases = [(b'name,description\r\nx,"open\r\n', 3),  # where the text ended
                 (b"name\r\nok\r\nbad\x00name\r\n", 3),
                 (b"name\r\nok\r\n\xff\xfe\r\n", 3),
                 (b'name\r\nab"c\r\n', 2),
                 (b"name\r\n" + b"x" * 70000 + b"\r\n", 2)]
        for text, line in cases:
            with self.subTest(text=text[:30]):
                body = assert_problem(self, imp(text), 400)
                self.assertEqual(body["line"], line, body)
                self.assertTrue(body["message"])
        assert_problem(self, imp(b""), 400)
        self.alive()

    def test_formula_cells_round_trip(self):
        b = brand()
        names = ["=SUM(A1:A9)", "+1 tone", "-5 drops", "@home", "'quoted", "plain'"]
        text = to_csv([{"name": n, "brand": b, "color_code": f"F-{i}"}
                       for i, n in enumerate(names)], ["name", "brand", "color_code"])
        self.assertIn(b"'=SUM(A1:A9)", text)
        r = imp(text)
        self.assertEqual((r.status, r.json()["create"]), (200, len(names)), r)
        got = stack().psql(f"SELECT string_agg(name, E'\\n' ORDER BY color_code) FROM paints "
                           f"WHERE brand = '{b}'")
        self.assertEqual(got.split("\n"), names)


class CacheAndRaces(unittest.TestCase):
    def test_reads_after_the_import_show_it(self):
        s = stack()
        b = brand()
        p = new_paint(brand=b, color_code="K-1", price=5)
        page = "/admin/paints?brand=" + urllib.parse.quote(b)
        for _ in range(2):  # the second reads come from the cache
            item, lst = s.get(f"/admin/paints/{p['id']}"), s.get(page)
        self.assertEqual(item.json()["price"], 5)
        self.assertEqual([x["price"] for x in lst.json()["items"]], [5])
        rows = export([p["id"]])
        rows[0]["price"] = "6.75"
        rows.append({"name": "Cache new", "brand": b, "color_code": "K-2", "price": "1.00",
                     "stock": "0", "color_preview": "#cccccc"})
        r = imp(to_csv(rows))
        self.assertEqual(r.status, 200, r)
        for _ in range(3):  # any process, any number of times
            self.assertEqual(s.get(f"/admin/paints/{p['id']}").json()["price"], 6.75)
            self.assertEqual(sorted(x["price"] for x in s.get(page).json()["items"]), [1, 6.75])

    def test_a_patch_racing_an_import_loses_nothing(self):
        s = stack()
        violations, outcomes = 0, {"import_first": 0, "patch_first": 0}
        for round_ in range(16):
            paints = [new_paint(brand=brand(), price=1) for _ in range(3)]
            rows = export([p["id"] for p in paints])
            for row in rows:
                row["price"] = "2.00"
            text = to_csv(rows, ["id", "price", "version"])
            res = {}

            def do_import():
                res["import"] = imp(text)

            def do_patch(pid):
                time.sleep(random.random() * 0.04 * (round_ % 4))  # lands before, during, after
                res[pid] = s.request("PATCH", f"/admin/paints/{pid}",
                                     body={"description": f"patched {round_}"})
            ts = [threading.Thread(target=do_import)] + [
                threading.Thread(target=do_patch, args=(p["id"],)) for p in paints]
            for t in (ts[1:] + ts[:1]) if round_ % 2 else ts:
                t.start()
            for t in ts:
                t.join()
            ri = res["import"]
            self.assertIn(ri.status, (200, 422), ri)
            for p in paints:
                now = s.get(f"/admin/paints/{p['id']}").json()
                self.assertEqual(res[p["id"]].status, 200, res[p["id"]])
                violations += now["description"] != f"patched {round_}"  # the patch is kept
                violations += ri.status == 200 and now["price"] != 2  # so is the import's change
                violations += now["version"] != 2 + (ri.status == 200)
            if ri.status == 422:
                violations += any(e["field"] != "version" for e in ri.json()["errors"])
            outcomes["import_first" if ri.status == 200 else "patch_first"] += 1
        print(f"\nimport vs PATCH: {outcomes}, violations {violations}", flush=True)
        self.assertEqual(violations, 0)


def service_rss_kb():
    """Resident memory of each service process (kB), from /proc."""
    out = []
    for f in sorted(glob.glob(os.path.join(stack().dir, "run", "app-*.pid"))):
        with open(f) as fh, open(f"/proc/{fh.read().strip()}/status") as st:
            out += [int(line.split()[1]) for line in st if line.startswith("VmRSS:")]
    return out


class TenThousand(unittest.TestCase):
    def test_10000_lines(self):
        s = stack()
        b = brand()
        s.psql("INSERT INTO paints (name, brand, color_code, stock, price) SELECT 'Bulk ' || g, "
               f"'{b}', 'U-' || g, g % 50, 1.00 FROM generate_series(1, 5000) g")
        ids = [int(x) for x in s.psql(
            f"SELECT id FROM paints WHERE brand = '{b}' ORDER BY id").split()]
        rows = export(ids)
        for r in rows:
            r["price"] = "2.50"
        rows += [{"name": f"New {i}", "brand": b, "color_code": f"V-{i}", "stock": str(i % 9),
                  "price": "3.00", "description": "imported\nin bulk", "color_preview": "#123abc"}
                 for i in range(5000)]
        text = to_csv(rows)
        rss0 = service_rss_kb()
        t0 = time.monotonic()
        r = imp(text, dry_run=True, timeout=120)
        dry = time.monotonic() - t0
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["create"], r.json()["update"]), (5000, 5000), r)
        t0 = time.monotonic()
        r = imp(text, timeout=120)
        took = time.monotonic() - t0
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["create"], r.json()["update"]), (5000, 5000), r)
        rss1 = service_rss_kb()
        print(f"\n10,000 lines ({len(text) / 1e6:.2f} MB): dry run {dry:.2f} s, import "
              f"{took:.2f} s; service RSS kB before {rss0}, after {rss1}", flush=True)
        self.assertEqual(by_brand(b), 10000)
        self.assertEqual(int(s.psql("SELECT count(*) FROM audit_log WHERE operation_id = "
                                    f"{r.json()['import_id']}")), 10000)
        self.assertEqual(s.psql("SELECT count(*) FROM cache_outbox"), "0")
        self.assertLess(took, 60)


if __name__ == "__main__":
    unittest.main()
