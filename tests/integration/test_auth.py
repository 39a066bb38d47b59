"""Authentication through nginx: login, cookies, sessions, CSRF, roles,
logout and expiry on every process, no secrets leaked (the login policy's
throttling is test_login_policy's, revocation races test_revocation's)."""
import base64
import hashlib
import http.client
import json
import re
import time
import unittest
import uuid

from harness import ADMIN_PASSWORD, stack
from test_basics import assert_problem

ADMIN_ROUTES = [("GET", "/admin/paints"), ("POST", "/admin/paints"), ("GET", "/admin/paints/stats"),
                ("GET", "/admin/paints/1"), ("PUT", "/admin/paints/1"), ("PATCH", "/admin/paints/1"),
                ("DELETE", "/admin/paints/1"), ("POST", "/admin/paints/1/stock"),
                ("GET", "/admin/pool")]
PROPAGATION = 1.2  # seconds: the promise is "within one second"


def as_user(cookie, csrf, method, path, body=None, origin=True, token=True):
    h = {"Cookie": cookie}
    if method not in ("GET", "HEAD"):
        if origin:
            h["Origin"] = stack().origin
        if token:
            h["X-CSRF-Token"] = csrf
    return stack().request(method, path, body=body, headers=h, auth=False)


def make_user(admin=True):
    name = "u" + uuid.uuid4().hex[:12]
    pw = "pw-" + uuid.uuid4().hex
    r = stack().run_binary("create-admin", name, env={"ADMIN_PASSWORD": pw})
    assert r.returncode == 0, r.stderr
    if not admin:
        stack().psql(f"UPDATE users SET is_admin = false WHERE username = '{name}'")
    return name, pw


def login_from(source, username, password, timeout=60, cookie=None):
    """POST /auth/login through nginx from the loopback address source
    (every 127.0.0.0/8 address is this machine: nginx sees it as the
    client's), with cookie if given; returns (status, lower-cased headers,
    body bytes); repeated headers are joined with ", "."""
    s = stack()
    conn = http.client.HTTPSConnection("127.0.0.1", s.https_port, context=s.ctx,
                                       timeout=timeout, source_address=(source, 0))
    h = {"Origin": s.origin, "Content-Type": "application/json"}
    if cookie:
        h["Cookie"] = cookie
    try:
        conn.request("POST", "/auth/login",
                     body=json.dumps({"username": username, "password": password}), headers=h)
        r = conn.getresponse()
        headers = {}
        for k, v in r.getheaders():
            headers[k.lower()] = headers[k.lower()] + ", " + v if k.lower() in headers else v
        return r.status, headers, r.read()
    finally:
        conn.close()


def token_of(cookie):
    """The session token of a cookie: its first 32 bytes (a MAC follows)."""
    value = cookie.split("=", 1)[1]
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))[:32]


class Login(unittest.TestCase):
    def test_success_cookie_and_body(self):
        cookie, csrf, r = stack().login()
        self.assertEqual(r.status, 200, r)
        sc = r.set_cookies[0]  # the session's comes first
        # the 32-byte token and its 16-byte MAC
        self.assertRegex(sc, r"^__Host-ps_session=[A-Za-z0-9_-]{64}; Path=/; Max-Age=43200; "
                             r"Secure; HttpOnly; SameSite=Strict$")
        self.assertRegex(r.set_cookies[1], r"^__Host-ps_device=[A-Za-z0-9_-]{54}; Path=/; "
                                           r"Max-Age=31536000; Secure; HttpOnly; SameSite=Strict$")
        body = r.json()
        self.assertEqual(body["user"]["username"], "admin")
        self.assertTrue(body["user"]["is_admin"])
        self.assertRegex(csrf, r"^[A-Za-z0-9_-]{43}$")
        me = as_user(cookie, csrf, "GET", "/auth/me")
        self.assertEqual(me.status, 200)
        self.assertEqual(me.json()["user"]["username"], "admin")

    def test_tokens_are_stored_only_as_hashes(self):
        cookie, _, _ = stack().login()
        token = token_of(cookie)
        self.assertEqual(len(token), 32)
        digest = hashlib.sha256(token).hexdigest()
        self.assertEqual(stack().psql(
            f"SELECT count(*) FROM sessions WHERE token_hash = '\\x{digest}'"), "1")
        self.assertEqual(stack().psql(
            f"SELECT count(*) FROM sessions WHERE token_hash = '\\x{token.hex()}'"), "0")

    def test_unknown_user_and_wrong_password_look_the_same(self):
        def attempt(user, pw):
            t0 = time.monotonic()
            r = stack().request("POST", "/auth/login", body={"username": user, "password": pw},
                                auth=False, headers={"Origin": stack().origin})
            return r, time.monotonic() - t0

        unknown = [attempt("nobody-" + uuid.uuid4().hex[:6], "whatever-pass") for _ in range(3)]
        wrong = [attempt("admin", "not-the-password") for _ in range(3)]
        for r, _ in unknown + wrong:
            self.assertEqual(r.status, 401)
            self.assertNotIn("set-cookie", r.headers)
        self.assertEqual({r.body for r, _ in unknown} | {r.body for r, _ in wrong},
                         {unknown[0][0].body})
        # both pay for one Argon2id verification: neither is several times faster
        tu = sorted(t for _, t in unknown)[1]
        tw = sorted(t for _, t in wrong)[1]
        self.assertGreater(tu, tw / 3)
        self.assertGreater(tw, tu / 3)

    def test_disabled_and_malformed(self):
        name, pw = make_user()
        stack().psql(f"UPDATE users SET disabled = true WHERE username = '{name}'")
        assert_problem(self, stack().request("POST", "/auth/login", auth=False,
                                             body={"username": name, "password": pw},
                                             headers={"Origin": stack().origin}), 401)
        for body in ({"username": "admin"}, {"username": "admin", "password": 5},
                     {"username": "admin", "password": "x", "extra": 1}):
            assert_problem(self, stack().request("POST", "/auth/login", auth=False, body=body,
                                                 headers={"Origin": stack().origin}), 422)

    def test_login_needs_an_allowed_origin(self):
        r = stack().request("POST", "/auth/login", auth=False,
                            body={"username": "admin", "password": ADMIN_PASSWORD},
                            headers={"Origin": "https://evil.example"})
        assert_problem(self, r, 403)
        self.assertNotIn("set-cookie", r.headers)


class AdminRequired(unittest.TestCase):
    def test_every_admin_route_refuses_without_a_session(self):
        for method, path in ADMIN_ROUTES:
            with self.subTest(route=f"{method} {path}"):
                r = stack().request(method, path, body={"delta": 1} if method != "GET" else None,
                                    auth=False, headers={"Origin": stack().origin})
                assert_problem(self, r, 401)
                r = stack().request(method, path, auth=False,
                                    headers={"Cookie": "__Host-ps_session=" + "A" * 43})
                assert_problem(self, r, 401)

    def test_non_admin_gets_403(self):
        name, pw = make_user(admin=False)
        cookie, csrf, r = stack().login(name, pw)
        self.assertEqual(r.status, 200)
        self.assertFalse(r.json()["user"]["is_admin"])
        for method, path in ADMIN_ROUTES:
            with self.subTest(route=f"{method} {path}"):
                assert_problem(self, as_user(cookie, csrf, method, path, body={"delta": 1}), 403)
        self.assertEqual(as_user(cookie, csrf, "GET", "/auth/me").status, 200)

    def test_expired_session_refused_within_a_second(self):
        name, pw = make_user()
        cookie, csrf, _ = stack().login(name, pw)
        for _ in range(4):  # warm both processes' caches
            self.assertEqual(as_user(cookie, csrf, "GET", "/admin/paints/1").status, 200)
        digest = hashlib.sha256(token_of(cookie)).hexdigest()
        stack().psql(f"UPDATE sessions SET expires_at = now() - interval '1 second' "
                     f"WHERE token_hash = '\\x{digest}'")
        time.sleep(PROPAGATION)
        for _ in range(6):
            assert_problem(self, as_user(cookie, csrf, "GET", "/admin/paints/1"), 401)

    def test_disabling_a_user_ends_its_sessions_within_a_second(self):
        name, pw = make_user()
        cookie, csrf, _ = stack().login(name, pw)
        for _ in range(4):
            self.assertEqual(as_user(cookie, csrf, "GET", "/admin/paints/1").status, 200)
        stack().psql(f"UPDATE users SET disabled = true WHERE username = '{name}'")
        time.sleep(PROPAGATION)
        for _ in range(6):
            assert_problem(self, as_user(cookie, csrf, "GET", "/admin/paints/1"), 401)

    def test_logout_ends_the_session_on_every_process(self):
        name, pw = make_user()
        cookie, csrf, _ = stack().login(name, pw)
        for _ in range(6):  # nginx spreads these over both processes
            self.assertEqual(as_user(cookie, csrf, "GET", "/admin/paints/1").status, 200)
        r = as_user(cookie, csrf, "POST", "/auth/logout")
        self.assertEqual(r.status, 204, r)
        self.assertIn("Max-Age=0", r.headers["set-cookie"])
        for _ in range(8):  # at once: the answer waited until no process trusts it
            assert_problem(self, as_user(cookie, csrf, "GET", "/admin/paints/1"), 401)
        assert_problem(self, as_user(cookie, csrf, "GET", "/auth/me"), 401)


class CSRF(unittest.TestCase):
    def test_refusals_change_nothing(self):
        s = stack()
        pid = s.request("POST", "/admin/paints", body={"name": "CSRF target", "stock": 5}).json()["id"]
        before = s.psql(f"SELECT version, stock FROM paints WHERE id = {pid}")
        count = s.psql("SELECT count(*) FROM paints")
        cookie, csrf = s.session
        attempts = [
            dict(headers={"Cookie": cookie, "Origin": s.origin}),                      # no token
            dict(headers={"Cookie": cookie, "Origin": s.origin, "X-CSRF-Token": "x" * 43}),
            dict(headers={"Cookie": cookie, "Origin": "https://evil.example", "X-CSRF-Token": csrf}),
            dict(headers={"Cookie": cookie, "X-CSRF-Token": csrf}),                    # no Origin
            dict(headers={"Cookie": cookie, "Origin": "null", "X-CSRF-Token": csrf}),
        ]
        for a in attempts:
            for method, path, body in (("POST", "/admin/paints", {"name": "nope"}),
                                       ("PATCH", f"/admin/paints/{pid}", {"stock": 99}),
                                       ("POST", f"/admin/paints/{pid}/stock", {"delta": 1}),
                                       ("DELETE", f"/admin/paints/{pid}", None)):
                with self.subTest(method=method, headers=sorted(a["headers"])):
                    r = s.request(method, path, body=body, auth=False, **a)
                    assert_problem(self, r, 403)
        self.assertEqual(s.psql(f"SELECT version, stock FROM paints WHERE id = {pid}"), before)
        self.assertEqual(s.psql("SELECT count(*) FROM paints"), count)


class NoSecretsLeak(unittest.TestCase):
    def test_no_hash_token_or_password_in_responses_or_logs(self):
        s = stack()
        cookie, csrf, r = s.login()
        token = cookie.split("=", 1)[1]
        bodies = [r.body, s.get("/auth/me").body, s.get("/admin/pool").body]
        for b in bodies:
            self.assertNotIn(b"$argon2", b)
        logs = "".join(text for _, text in s.logs())
        self.assertNotIn("$argon2", logs)
        self.assertNotIn(ADMIN_PASSWORD, logs)
        self.assertNotIn(token, logs)
        self.assertNotIn(csrf, logs)
        self.assertNotIn("ps_session", logs)

    def test_request_log_records_who(self):
        s = stack()
        uid = s.psql("SELECT id FROM users WHERE username = 'admin'")
        marker = "/admin/paints/1?who=" + uuid.uuid4().hex[:8]
        r = s.get(marker)  # a 400 (unknown parameter) still names the user
        line = s.log_line(r.headers["x-request-id"])
        self.assertRegex(line, r'"path":"/admin/paints/1".*"user_id":' + uid + ",")


if __name__ == "__main__":
    unittest.main()
