"""Routes of the first issue through nginx over TLS: health, a paint's JSON
shape, ids, unknown paths and methods, headers."""
import re
import socket
import ssl
import unittest

from harness import stack

PAINT_KEYS = {"id", "name", "brand", "color_code", "color_type", "color_family",
              "image_url", "stock", "price", "description", "color_preview",
              "created_at", "updated_at", "version", "low_stock_threshold", "low_stock"}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def assert_problem(t, r, status):
    t.assertEqual(r.status, status, r)
    t.assertEqual(r.headers["content-type"], "application/problem+json")
    body = r.json()
    t.assertEqual(body["status"], status)
    t.assertEqual(body["title"], body["error"])
    t.assertTrue(body["detail"])
    t.assertIn("type", body)
    return body


class Health(unittest.TestCase):
    def test_healthz(self):
        r = stack().get("/healthz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {"status": "ok"})

    def test_readyz(self):
        r = stack().get("/readyz")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["database"], "ok")


class PaintShape(unittest.TestCase):
    def test_seeded_catalogue(self):
        n = int(stack().psql("SELECT count(*) FROM paints"))
        self.assertGreaterEqual(n, 10000)
        families = int(stack().psql("SELECT count(DISTINCT color_family) FROM paints"))
        brands = int(stack().psql("SELECT count(DISTINCT brand) FROM paints"))
        self.assertGreaterEqual(families, 8)
        self.assertGreaterEqual(brands, 10)

    def test_seeded_paint_matches_database(self):
        row = stack().psql("SELECT id, name, brand, stock, price::text, color_preview, version "
                           "FROM paints ORDER BY id LIMIT 1").split("|")
        r = stack().get(f"/admin/paints/{row[0]}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["content-type"], "application/json")
        p = r.json()
        self.assertEqual(set(p), PAINT_KEYS)
        self.assertEqual(p["id"], int(row[0]))
        self.assertEqual(p["name"], row[1])
        self.assertEqual(p["brand"], row[2])
        self.assertEqual(p["stock"], int(row[3]))
        self.assertEqual(f"{p['price']:.2f}", row[4])
        # the price is written exactly as PostgreSQL holds it (two decimals)
        self.assertIn(f'"price":{row[4]}', r.body.decode())
        self.assertRegex(p["color_preview"], r"^#[0-9a-f]{6}$")
        self.assertEqual(p["version"], int(row[6]))
        self.assertRegex(p["created_at"], ISO_UTC)
        self.assertRegex(p["updated_at"], ISO_UTC)

    def test_defaults_of_a_minimal_paint(self):
        pid = stack().psql("INSERT INTO paints (name) VALUES ('Only A Name') RETURNING id")
        try:
            p = stack().get(f"/admin/paints/{pid}").json()
            self.assertEqual(p["name"], "Only A Name")
            for k in ("brand", "color_code", "color_type", "color_family", "image_url",
                      "description"):
                self.assertEqual(p[k], "", k)
            self.assertEqual(p["stock"], 0)
            self.assertEqual(p["price"], 0)
            self.assertEqual(p["color_preview"], "#cccccc")
            self.assertEqual(p["version"], 1)
        finally:
            stack().psql(f"DELETE FROM paints WHERE id = {pid}")

    def test_text_is_returned_literally(self):
        name = "Quote \" back\\slash <tag> 'sql' ; DROP TABLE paints; -- ünï 🎨"
        pid = stack().psql("INSERT INTO paints (name) VALUES ($$" + name + "$$) RETURNING id")
        try:
            self.assertEqual(stack().get(f"/admin/paints/{pid}").json()["name"], name)
        finally:
            stack().psql(f"DELETE FROM paints WHERE id = {pid}")


class Errors(unittest.TestCase):
    def test_missing_paint_is_404(self):
        assert_problem(self, stack().get("/admin/paints/9223372036854775807"), 404)

    def test_bad_ids_are_400(self):
        for bad in ("abc", "0", "-1", "01", "1e3", "1.5", "9223372036854775808",
                    "99999999999999999999999999", "%201", "1%00", "%ff", "+1"):
            with self.subTest(id=bad):
                assert_problem(self, stack().get("/admin/paints/" + bad), 400)

    def test_unknown_admin_path_is_404_problem(self):
        assert_problem(self, stack().get("/admin/nothing-here"), 404)
        assert_problem(self, stack().get("/admin/paints/1/nothing"), 404)

    def test_unknown_static_path_is_404_problem(self):
        assert_problem(self, stack().get("/no-such-file.txt"), 404)

    def test_wrong_method_is_405_with_allow(self):
        r = stack().request("DELETE", "/healthz")
        assert_problem(self, r, 405)
        self.assertEqual(r.headers["allow"], "GET, HEAD")
        # A literal path is its own routes', never a paint's id.
        for method, path, allow in (("GET", "/admin/paints/import", "POST"),
                                    ("DELETE", "/admin/paints/stats", "GET, HEAD"),
                                    ("PUT", "/admin/paints/export.csv", "GET, HEAD")):
            r = stack().request(method, path)
            assert_problem(self, r, 405)
            self.assertEqual(r.headers["allow"], allow, path)

    def test_head(self):
        r = stack().request("HEAD", "/healthz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"")

    def test_malformed_query_is_400(self):
        assert_problem(self, stack().get("/admin/paints/1?x=%zz"), 400)
        assert_problem(self, stack().get("/admin/paints/1?x=%ff"), 400)


class Transport(unittest.TestCase):
    def test_security_headers(self):
        for path in ("/healthz", "/admin/paints/1", "/"):
            with self.subTest(path=path):
                h = stack().get(path).headers
                self.assertIn("max-age=", h["strict-transport-security"])
                self.assertEqual(h["x-content-type-options"], "nosniff")
                self.assertIn("default-src 'self'", h["content-security-policy"])
                self.assertEqual(h["x-frame-options"], "DENY")

    def test_cache_control(self):
        # live figures are never stored; paints may be kept but revalidated
        self.assertEqual(stack().get("/admin/pool").headers["cache-control"], "no-store")
        self.assertEqual(stack().get("/healthz").headers["cache-control"], "no-store")
        self.assertEqual(stack().get("/admin/paints/1").headers["cache-control"],
                         "private, no-cache")

    def test_request_id_comes_from_nginx(self):
        r = stack().get("/healthz")
        self.assertRegex(r.headers["x-request-id"], r"^[0-9a-f]{32}$")
        self.assertNotEqual(r.headers["x-request-id"], stack().get("/healthz").headers["x-request-id"])

    def test_tls_and_http2(self):
        import os
        ctx = ssl.create_default_context(cafile=os.path.join(stack().dir, "tls", "cert.pem"))
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", stack().https_port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                self.assertEqual(s.selected_alpn_protocol(), "h2")
                self.assertIn(s.version(), ("TLSv1.2", "TLSv1.3"))


if __name__ == "__main__":
    unittest.main()
