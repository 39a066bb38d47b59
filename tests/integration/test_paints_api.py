"""The paint admin API through nginx: CRUD, validation, conditional
requests, stock changes, stats, filters and keyset pagination."""
import json
import threading
import unittest
import uuid

from harness import stack
from test_basics import assert_problem

JSON = {"Content-Type": "application/json"}


def new_paint(**fields):
    body = {"name": "Test " + uuid.uuid4().hex[:10], "brand": "TestBrand",
            "color_code": "TB-1", "color_type": "Acrylic", "color_family": "Red",
            "stock": 10, "price": 12.5, "color_preview": "#112233"}
    body.update(fields)
    r = stack().request("POST", "/admin/paints", body=body)
    assert r.status == 201, r
    return r.json()


def row(pid):
    """The paint as PostgreSQL has it, for proof that nothing changed."""
    return stack().psql("SELECT name, brand, color_code, color_type, color_family, image_url, "
                        f"stock, price, description, color_preview, version FROM paints WHERE id = {pid}")


class Create(unittest.TestCase):
    def test_create_returns_201_location_and_the_paint(self):
        r = stack().request("POST", "/admin/paints", body={
            "name": "  Cadmium Test  ", "brand": "Golden", "color_code": "GA-1",
            "color_type": "Acrylic", "color_family": "Red", "image_url": "https://img.example/x.png",
            "stock": 7, "price": 19.99, "description": "line one\nline two",
            "color_preview": "#ABCDEF"})
        self.assertEqual(r.status, 201, r)
        p = r.json()
        self.assertEqual(r.headers["location"], f"/admin/paints/{p['id']}")
        self.assertEqual(r.headers["etag"], '"v1"')
        self.assertEqual(p["name"], "Cadmium Test")  # trimmed
        self.assertEqual(p["color_preview"], "#abcdef")  # lower-cased
        self.assertEqual(p["description"], "line one\nline two")
        self.assertEqual(p["version"], 1)
        self.assertIn('"price":19.99', r.body.decode())
        self.assertEqual(stack().get(r.headers["location"]).json(), p)

    def test_defaults(self):
        p = stack().request("POST", "/admin/paints", body={"name": "Bare"}).json()
        for k in ("brand", "color_code", "color_type", "color_family", "image_url", "description"):
            self.assertEqual(p[k], "")
        self.assertEqual(p["stock"], 0)
        self.assertEqual(p["color_preview"], "#cccccc")
        self.assertIn('"price":0.00', stack().get(f"/admin/paints/{p['id']}").body.decode())

    def test_price_round_trip_is_exact(self):
        for price in ("0.1", "19.99", "99999999.99", "0", "5", "100.50"):
            with self.subTest(price=price):
                body = ('{"name": "Price %s", "price": %s}' % (price, price)).encode()
                r = stack().request("POST", "/admin/paints", body=body, headers=JSON)
                self.assertEqual(r.status, 201, r)
                pid = r.json()["id"]
                expect = price if "." in price else price + ".00"
                expect = expect if len(expect.split(".")[1]) == 2 else expect + "0"
                self.assertEqual(stack().psql(f"SELECT price::text FROM paints WHERE id = {pid}"),
                                 expect)
                self.assertIn(f'"price":{expect}', stack().get(f"/admin/paints/{pid}").body.decode())

    def test_injection_strings_are_stored_literally(self):
        evil = ["'; DROP TABLE paints; --", "\" OR 1=1 --", "Robert'); DELETE FROM users;--",
                "%_\\", "<script>alert(1)</script>", "$1 $$ $2", "ünïcödé 🎨"]
        for s in evil:
            with self.subTest(s=s):
                p = new_paint(name=s, brand=s[:100], color_code=s[:50], color_type=s,
                              color_family=s, description=s)
                got = stack().get(f"/admin/paints/{p['id']}").json()
                for k in ("name", "brand", "color_type", "color_family", "description"):
                    self.assertEqual(got[k], s.strip())
        self.assertGreater(int(stack().psql("SELECT count(*) FROM paints")), 10000)


class Validation(unittest.TestCase):
    """Each rule with a bad value: 422 naming the field, and no change."""

    CASES = [
        ("name", None, "required"), ("name", "", None), ("name", "   ", None),
        ("name", "x" * 201, "200"), ("name", 5, "string"), ("name", "a\u0001b", "control"),
        ("brand", "b" * 101, "100"), ("color_code", "c" * 51, "50"),
        ("color_type", "t" * 101, "100"), ("color_family", "f" * 101, "100"),
        ("description", "d" * 5001, "5000"),
        ("color_preview", "red", "#RRGGBB"), ("color_preview", "#12345g", "#RRGGBB"),
        ("color_preview", "#1234567", None),
        ("image_url", "ftp://x.example/a.png", "http"), ("image_url", "javascript:alert(1)", "http"),
        ("image_url", "http://", "host"), ("image_url", "https://x.example/a b.png", "spaces"),
        ("image_url", "https://x.example/" + "a" * 2040, "2048"),
        ("stock", -1, "0 to 1000000"), ("stock", 1000001, "0 to 1000000"),
        ("stock", 1.5, "whole"), ("stock", "3", "number"), ("stock", 1e30, "whole"),
        ("stock", 99999999999999999999999, None),
        ("price", -1, "negative"), ("price", 19.999, "2 decimals"), ("price", "19.99", "number"),
        ("price", 100000000, "below"), ("price", True, "number"),
        ("colour", "red", "not a field"),
    ]

    def setUp(self):
        self.p = new_paint()
        self.before = row(self.p["id"])

    def check(self, status, r, field=None, words=None):
        body = assert_problem(self, r, status)
        if field:
            self.assertIn(field, body["errors"], body)
            if words:
                self.assertIn(words, body["errors"][field])
        self.assertEqual(row(self.p["id"]), self.before, "a refused write changed the row")

    def test_each_rule(self):
        base = {k: v for k, v in self.p.items()
                if k not in ("id", "created_at", "updated_at", "version")}
        for field, value, words in self.CASES:
            with self.subTest(field=field, value=str(value)[:40]):
                body = dict(base)
                if value is None:
                    body.pop(field, None)
                else:
                    body[field] = value
                self.check(422, stack().request("PUT", f"/admin/paints/{self.p['id']}",
                                                body=body), field, words)
                r = stack().request("PATCH", f"/admin/paints/{self.p['id']}",
                                    body={field: value})
                self.check(422, r, field)

    def test_price_with_exponent_or_leading_zero(self):
        for raw, words in ((b"1e2", "exponent"), (b"0.5e1", "exponent"), (b"007", None),
                           (b"1E-2", "exponent")):
            with self.subTest(raw=raw):
                body = b'{"name": "n", "price": ' + raw + b"}"
                r = stack().request("PUT", f"/admin/paints/{self.p['id']}", body=body, headers=JSON)
                if raw == b"007":  # not JSON at all: a leading zero is malformed
                    self.check(400, r)
                else:
                    self.check(422, r, "price", words)

    def test_every_error_reported_at_once(self):
        r = stack().request("POST", "/admin/paints",
                            body={"name": "", "price": 1.234, "stock": -2, "x": 1})
        errors = assert_problem(self, r, 422)["errors"]
        self.assertEqual(set(errors), {"name", "price", "stock", "x"})

    def test_malformed_bodies(self):
        pid = self.p["id"]
        cases = [
            (400, b'{"name": "x"', JSON),            # truncated
            (400, b'{"name": "x"} trailing', JSON),
            (400, b"", JSON),
            (400, b'{"name": "\xff\xfe"}', JSON),    # invalid UTF-8
            (400, b'{"name": "\xed\xa0\x80"}', JSON),  # a UTF-16 surrogate in UTF-8
            (400, b"[" * 100 + b"]" * 100, JSON),    # nested too deeply
            (400, b"{'name': 'x'}", JSON),
            (422, b'["name"]', JSON),
            (422, b'{"name": "a\\u0000b"}', JSON),
            (415, b'{"name": "x"}', {"Content-Type": "text/plain"}),
            (415, b'{"name": "x"}', {}),
        ]
        for status, body, headers in cases:
            with self.subTest(body=body[:30]):
                r = stack().request("PUT", f"/admin/paints/{pid}", body=body, headers=headers)
                self.check(status, r)

    def test_body_over_the_limit_is_413(self):
        big = json.dumps({"name": "x", "description": "d" * 70000}).encode()
        r = stack().request("POST", "/admin/paints", body=big, headers=JSON)
        assert_problem(self, r, 413)

    def test_merge_patch_type_only_for_patch(self):
        h = {"Content-Type": "application/merge-patch+json"}
        r = stack().request("PUT", f"/admin/paints/{self.p['id']}", body=b'{"name":"x"}', headers=h)
        self.check(415, r)


class Conditional(unittest.TestCase):
    def test_item_etag_and_304(self):
        p = new_paint()
        r = stack().get(f"/admin/paints/{p['id']}")
        etag = r.headers["etag"]
        self.assertEqual(etag, '"v1"')
        r2 = stack().get(f"/admin/paints/{p['id']}", headers={"If-None-Match": etag})
        self.assertEqual(r2.status, 304)
        self.assertEqual(r2.body, b"")
        self.assertEqual(r2.headers["etag"], etag)
        r3 = stack().get(f"/admin/paints/{p['id']}", headers={"If-None-Match": '"v0", W/"v1"'})
        self.assertEqual(r3.status, 304)
        self.assertEqual(stack().get(f"/admin/paints/{p['id']}",
                                     headers={"If-None-Match": '"v7"'}).status, 200)

    def test_two_admins_cannot_overwrite_each_other(self):
        p = new_paint()
        url = f"/admin/paints/{p['id']}"
        etag = stack().get(url).headers["etag"]
        first = stack().request("PATCH", url, body={"stock": 1}, headers={"If-Match": etag})
        self.assertEqual(first.status, 200, first)
        self.assertEqual(first.headers["etag"], '"v2"')
        before = row(p["id"])
        for method, body in (("PATCH", {"stock": 2}), ("PUT", {"name": "Other"})):
            r = stack().request(method, url, body=body, headers={"If-Match": etag})
            assert_problem(self, r, 412)
            self.assertEqual(r.headers["etag"], '"v2"')
        r = stack().request("DELETE", url, headers={"If-Match": etag})
        assert_problem(self, r, 412)
        for bad in ('W/"v2"', '"2"', "garbage"):
            assert_problem(self, stack().request("PATCH", url, body={"stock": 3},
                                                 headers={"If-Match": bad}), 412)
        self.assertEqual(row(p["id"]), before)
        ok = stack().request("PUT", url, body={"name": "Fine"}, headers={"If-Match": '"v2"'})
        self.assertEqual(ok.status, 200, ok)
        self.assertEqual(ok.json()["version"], 3)
        star = stack().request("PATCH", url, body={"stock": 4}, headers={"If-Match": "*"})
        self.assertEqual(star.status, 200)


class Updates(unittest.TestCase):
    def test_concurrent_patches_of_other_fields_lose_nothing(self):
        """Four writers PATCH one paint at once, each its own field. A PATCH
        merges into the row it read; had one written a stale row, it would
        have put back another writer's old value: a final field not its
        writer's last value, or an audit entry changing two fields."""
        p = new_paint()
        url = f"/admin/paints/{p['id']}"
        fields, rounds, failures = ("name", "brand", "color_code", "description"), 15, []

        def writer(field):
            for k in range(rounds):
                r = stack().request("PATCH", url, body={field: f"{field}-{k}"}, timeout=30)
                if r.status != 200:
                    failures.append((field, k, r.status, r.body[:200]))

        threads = [threading.Thread(target=writer, args=(f,)) for f in fields]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(failures, [])
        got = stack().get(url).json()
        for f in fields:
            self.assertEqual(got[f], f"{f}-{rounds - 1}", f)
        self.assertEqual(got["version"], p["version"] + len(fields) * rounds)
        changed = stack().psql("SELECT string_agg((SELECT string_agg(k, ',') FROM "
                               "jsonb_object_keys(changes) k), ';' ORDER BY id) FROM audit_log "
                               f"WHERE entity = 'paint' AND entity_id = {p['id']} AND action = 'patch'")
        entries = changed.split(";")
        self.assertEqual(len(entries), len(fields) * rounds)
        self.assertEqual([e for e in entries if e not in fields], [], "an entry changed two fields")

    def test_put_replaces_everything(self):
        p = new_paint(description="old", image_url="https://x.example/i.png")
        r = stack().request("PUT", f"/admin/paints/{p['id']}", body={"name": "Replaced"})
        self.assertEqual(r.status, 200, r)
        q = r.json()
        self.assertEqual(q["name"], "Replaced")
        self.assertEqual(q["description"], "")
        self.assertEqual(q["image_url"], "")
        self.assertEqual(q["stock"], 0)
        self.assertEqual(q["version"], p["version"] + 1)
        self.assertGreater(q["updated_at"], p["updated_at"])
        self.assertEqual(q["created_at"], p["created_at"])

    def test_put_accepts_a_paint_as_read(self):
        p = new_paint()
        got = stack().get(f"/admin/paints/{p['id']}").json()
        got["stock"] = 99
        r = stack().request("PUT", f"/admin/paints/{p['id']}", body=got)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["stock"], 99)

    def test_patch_merges_and_null_resets(self):
        p = new_paint(description="keep me?", stock=4)
        for ctype in ("application/json", "application/merge-patch+json"):
            with self.subTest(ctype=ctype):
                r = stack().request("PATCH", f"/admin/paints/{p['id']}",
                                    body=json.dumps({"description": None, "stock": 6}).encode(),
                                    headers={"Content-Type": ctype})
                self.assertEqual(r.status, 200, r)
                q = r.json()
                self.assertEqual(q["description"], "")
                self.assertEqual(q["stock"], 6)
                self.assertEqual(q["name"], p["name"])
                self.assertEqual(q["brand"], p["brand"])
                self.assertEqual(q["color_preview"], p["color_preview"])
        r = stack().request("PATCH", f"/admin/paints/{p['id']}", body={"color_preview": None})
        self.assertEqual(r.json()["color_preview"], "#cccccc")
        assert_problem(self, stack().request("PATCH", f"/admin/paints/{p['id']}",
                                             body={"name": None}), 422)

    def test_missing_paint(self):
        for method in ("PUT", "PATCH"):
            assert_problem(self, stack().request(method, "/admin/paints/9000000000",
                                                 body={"name": "x"}), 404)
        assert_problem(self, stack().request("DELETE", "/admin/paints/9000000000"), 404)
        assert_problem(self, stack().request("POST", "/admin/paints/9000000000/stock",
                                             body={"delta": 1}), 404)

    def test_delete(self):
        p = new_paint()
        r = stack().request("DELETE", f"/admin/paints/{p['id']}")
        self.assertEqual(r.status, 204)
        self.assertEqual(r.body, b"")
        assert_problem(self, stack().get(f"/admin/paints/{p['id']}"), 404)
        assert_problem(self, stack().request("DELETE", f"/admin/paints/{p['id']}"), 404)


class Stock(unittest.TestCase):
    def test_adjust_and_refuse_below_zero(self):
        p = new_paint(stock=3)
        url = f"/admin/paints/{p['id']}/stock"
        r = stack().request("POST", url, body={"delta": 2})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["stock"], 5)
        self.assertEqual(r.json()["version"], 2)
        r = stack().request("POST", url, body={"delta": -5})
        self.assertEqual(r.json()["stock"], 0)
        before = row(p["id"])
        body = assert_problem(self, stack().request("POST", url, body={"delta": -1}), 409)
        self.assertIn("below 0", body["detail"])
        self.assertEqual(row(p["id"]), before)
        for bad in ({"delta": 0}, {"delta": 1.5}, {"delta": "1"}, {}, {"delta": 1, "x": 2},
                    {"delta": 2000000}):
            assert_problem(self, stack().request("POST", url, body=bad), 422)
        self.assertEqual(row(p["id"]), before)

    def test_concurrent_decrements_stop_exactly_at_zero(self):
        p = new_paint(stock=10)
        url = f"/admin/paints/{p['id']}/stock"
        statuses = []

        def dec():
            statuses.append(stack().request("POST", url, body={"delta": -1}).status)
        threads = [threading.Thread(target=dec) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(statuses.count(200), 10, statuses)
        self.assertEqual(statuses.count(409), 10, statuses)
        self.assertEqual(stack().get(f"/admin/paints/{p['id']}").json()["stock"], 0)
        self.assertEqual(stack().psql(f"SELECT stock, version FROM paints WHERE id = {p['id']}"),
                         "0|11")


class Stats(unittest.TestCase):
    def test_figures_match_the_database(self):
        s = stack().get("/admin/paints/stats")
        self.assertEqual(s.status, 200, s)
        st = s.json()
        total, in_stock, value = stack().psql(
            "SELECT count(*), count(*) FILTER (WHERE stock > 0), sum(stock * price)::numeric(20,2) "
            "FROM paints").split("|")
        self.assertEqual(st["total"], int(total))
        self.assertEqual(st["in_stock"], int(in_stock))
        self.assertIn(f'"stock_value":{value}', s.body.decode())
        self.assertEqual(sum(st["by_brand"].values()), int(total))
        self.assertEqual(sum(st["by_family"].values()), int(total))
        golden = stack().psql("SELECT count(*) FROM paints WHERE brand = 'Golden'")
        self.assertEqual(st["by_brand"]["Golden"], int(golden))


if __name__ == "__main__":
    unittest.main()
