"""GET /admin/paints: filters, sorts, keyset pagination (also while others
insert), the page ETag and 304, and refusal of bad parameters."""
import threading
import unittest
from urllib.parse import quote, urlencode

from harness import stack
from test_basics import assert_problem


def page(params):
    r = stack().get("/admin/paints?" + urlencode(params))
    assert r.status == 200, r
    return r.json()


def walk(params):
    """Every item of a list, following next_cursor."""
    items, cursor, pages = [], None, 0
    while True:
        p = dict(params)
        if cursor:
            p["cursor"] = cursor
        body = page(p)
        items.extend(body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


def sql_ids(where, order, limit=None):
    q = f"SELECT id FROM paints WHERE {where} ORDER BY {order}"
    if limit:
        q += f" LIMIT {limit}"
    return [int(x) for x in stack().psql(q).split("\n") if x]


class Filters(unittest.TestCase):
    def test_default_is_newest_first_50(self):
        body = page({})
        self.assertEqual(len(body["items"]), 50)
        self.assertEqual([p["id"] for p in body["items"]],
                         sql_ids("true", "created_at DESC, id DESC", 50))
        self.assertIsNotNone(body["next_cursor"])

    def test_each_filter_matches_sql(self):
        cases = [
            ({"brand": "Golden"}, "brand = 'Golden'"),
            ({"color_family": "Blue", "color_type": "Oil"}, "color_family = 'Blue' AND color_type = 'Oil'"),
            ({"in_stock": "true"}, "stock > 0"),
            ({"in_stock": "false"}, "stock = 0"),
            ({"q": "cobalt"}, "(name ILIKE '%cobalt%' OR brand ILIKE '%cobalt%' OR color_code ILIKE '%cobalt%')"),
            ({"q": "GA-1"}, "(name ILIKE '%GA-1%' OR brand ILIKE '%GA-1%' OR color_code ILIKE '%GA-1%')"),
            ({"min_price": "10", "max_price": "12.50"}, "price BETWEEN 10 AND 12.50"),
            ({"brand": "Golden", "in_stock": "true", "sort": "price"}, "brand = 'Golden' AND stock > 0"),
        ]
        for params, where in cases:
            with self.subTest(params=params):
                sort = params.get("sort", "-created_at")
                col = sort.lstrip("-")
                d = "DESC" if sort.startswith("-") else "ASC"
                want = sql_ids(where, f"{col} {d}, id {d}", 200)
                got = [p["id"] for p in page(dict(params, limit=200))["items"]]
                self.assertEqual(got, want)
                self.assertTrue(got or params.get("in_stock") == "false")

    def test_sorts(self):
        for sort in ("created_at", "-created_at", "name", "-name", "price", "-price", "stock", "-stock"):
            with self.subTest(sort=sort):
                col = sort.lstrip("-")
                d = "DESC" if sort.startswith("-") else "ASC"
                self.assertEqual([p["id"] for p in page({"sort": sort, "limit": 30})["items"]],
                                 sql_ids("true", f"{col} {d}, id {d}", 30))

    def test_q_is_literal(self):
        pid = stack().request("POST", "/admin/paints", body={
            "name": "100% Pure_Blue \\ it's", "brand": "Lit'eral"}).json()["id"]
        for q, hit in (("100%", True), ("Pure_Blue", True), ("0%_", False), ("_", True),
                       ("it's", True), ("'; DROP TABLE paints; --", False), ("\\", True)):
            with self.subTest(q=q):
                ids = [p["id"] for p in page({"q": q, "limit": 200})["items"]]
                self.assertEqual(pid in ids, hit)
        # "%" matches a literal percent sign, not everything
        percent = page({"q": "%", "limit": 200})["items"]
        self.assertIn(pid, [p["id"] for p in percent])
        self.assertTrue(all("%" in p["name"] + p["brand"] + p["color_code"] for p in percent))


class Pagination(unittest.TestCase):
    def test_walk_whole_catalogue_while_others_insert(self):
        before = set(sql_ids("true", "id"))
        stop = threading.Event()
        inserted = []

        def insert():
            i = 0
            while not stop.is_set() and i < 200:
                i += 1
                r = stack().request("POST", "/admin/paints", body={"name": f"Concurrent {i}"})
                inserted.append(r.json()["id"])

        t = threading.Thread(target=insert)
        t.start()
        try:
            items, pages = walk({"limit": 200})
        finally:
            stop.set()
            t.join()
        ids = [p["id"] for p in items]
        self.assertEqual(len(ids), len(set(ids)), "a paint appeared twice")
        self.assertTrue(before <= set(ids), f"{len(before - set(ids))} paints were skipped")
        keys = [(p["created_at"], p["id"]) for p in items]
        self.assertEqual(keys, sorted(keys, reverse=True), "out of order")
        self.assertGreater(len(inserted), 0)
        self.assertGreaterEqual(pages, len(before) // 200)

    def test_walk_other_sorts_with_filters(self):
        for params in ({"sort": "name", "brand": "Golden", "limit": 37},
                       {"sort": "-price", "color_family": "Blue", "limit": 50},
                       {"sort": "stock", "in_stock": "true", "q": "red", "limit": 100}):
            with self.subTest(params=params):
                items, _ = walk(params)
                one = page(dict(params, limit=200))  # first 200 in one go
                self.assertEqual([p["id"] for p in items][:len(one["items"])],
                                 [p["id"] for p in one["items"]])
                ids = [p["id"] for p in items]
                self.assertEqual(len(ids), len(set(ids)))

    def test_bad_parameters_are_400(self):
        other_sort_cursor = page({"sort": "name", "limit": 1})["next_cursor"]
        for params in ({"limit": "0"}, {"limit": "201"}, {"limit": "ten"}, {"sort": "colour"},
                       {"in_stock": "yes"}, {"min_price": "-1"}, {"max_price": "1e3"},
                       {"colour": "red"}, {"cursor": "not-a-cursor"}, {"cursor": "e30"},
                       {"cursor": other_sort_cursor}, {"brand": ""}, {"q": "x" * 101}):
            with self.subTest(params=params):
                assert_problem(self, stack().get("/admin/paints?" + urlencode(params)), 400)

    def test_tampered_cursor_value_is_400(self):
        import base64
        raw = base64.urlsafe_b64encode(b'{"s":"-created_at","v":"not a time","i":5}')
        assert_problem(self, stack().get("/admin/paints?cursor=" + quote(raw.rstrip(b"=").decode())),
                       400)


class ListETag(unittest.TestCase):
    def test_unchanged_page_polls_as_304(self):
        url = "/admin/paints?brand=Winsor%20%26%20Newton&limit=20"
        r = stack().get(url)
        etag = r.headers["etag"]
        self.assertEqual(r.headers["cache-control"], "private, no-cache")
        again = stack().get(url, headers={"If-None-Match": etag})
        self.assertEqual(again.status, 304)
        self.assertEqual(again.body, b"")
        first = r.json()["items"][0]
        stack().request("PATCH", f"/admin/paints/{first['id']}", body={"stock": first["stock"] + 1})
        changed = stack().get(url, headers={"If-None-Match": etag})
        self.assertEqual(changed.status, 200)
        self.assertNotEqual(changed.headers["etag"], etag)


if __name__ == "__main__":
    unittest.main()
