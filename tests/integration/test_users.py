"""The users resource through nginx: GET/POST /admin/users, PATCH
/admin/users/{id}, DELETE /admin/users/{id}/sessions, POST /auth/password.
The password policy, the 409s that keep at least one enabled admin (also
under concurrent mutual demotion), sessions ended on disable and reset,
and one audit entry per acknowledged write, none for a refused one."""
import json
import subprocess
import threading
import time
import unittest
import urllib.parse
import uuid

from harness import stack
from test_auth import as_user
from test_basics import assert_problem

PROPAGATION = 1.2  # seconds: sessions are trusted for one second per process


def new_name():
    return "u" + uuid.uuid4().hex[:12]


def new_password():
    return "pw-" + uuid.uuid4().hex


def create(name=None, password=None, is_admin=False):
    """Create a user as the stack's admin; returns (id, name, password)."""
    name = name or new_name()
    password = password or new_password()
    r = stack().request("POST", "/admin/users",
                        body={"username": name, "password": password, "is_admin": is_admin})
    assert r.status == 201, r
    return r.json()["id"], name, password


def login(name, password):
    cookie, csrf, r = stack().login(name, password)
    assert cookie, r
    return cookie, csrf


def audit_rows(uid):
    """The audit entries of writes to user uid: [(action, actor, changes)]
    in order (its logins, failed logins and logouts left out)."""
    out = stack().psql("SELECT coalesce(json_agg(json_build_array(action, actor, changes) "
                       "ORDER BY id), '[]') FROM audit_log "
                       f"WHERE entity = 'user' AND entity_id = {int(uid)} "
                       "AND action NOT IN ('login', 'login_failed', 'logout')")
    return json.loads(out)


def all_users(limit=None):
    """Every user through GET /admin/users, following next_cursor."""
    out, cursor = [], None
    while True:
        q = {}
        if limit:
            q["limit"] = limit
        if cursor:
            q["cursor"] = cursor
        r = stack().get("/admin/users" + ("?" + urllib.parse.urlencode(q) if q else ""))
        assert r.status == 200, r
        out += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return out


def listed(uid):
    return next((u for u in all_users(limit=200) if u["id"] == uid), None)


def still_refused(test, cookie, csrf, path="/auth/me"):
    """The cookie gets 401 on every process (after the cache's second)."""
    time.sleep(PROPAGATION)
    for _ in range(6):
        assert_problem(test, as_user(cookie, csrf, "GET", path), 401)


class Create(unittest.TestCase):
    def test_create_list_and_login_time(self):
        uid, name, pw = create()
        u = listed(uid)
        self.assertEqual(u["username"], name)
        self.assertFalse(u["is_admin"])
        self.assertFalse(u["disabled"])
        self.assertIsNone(u["last_login_at"])
        self.assertEqual(u["active_sessions"], 0)
        self.assertRegex(u["created_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        login(name, pw)
        login(name, pw)
        u = listed(uid)
        self.assertRegex(u["last_login_at"], r"^\d{4}-\d\d-\d\dT")
        self.assertEqual(u["active_sessions"], 2)
        self.assertEqual([a[0] for a in audit_rows(uid)], ["create"])
        action, actor, changes = audit_rows(uid)[0]
        self.assertEqual(actor, "admin")
        self.assertEqual(changes["username"], {"old": None, "new": name})
        self.assertNotIn("password_hash", json.dumps(changes))

    def test_location_and_admin_flag(self):
        name = new_name()
        r = stack().request("POST", "/admin/users",
                            body={"username": name, "password": new_password(), "is_admin": True})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.headers["location"], f"/admin/users/{r.json()['id']}")
        self.assertTrue(r.json()["is_admin"])

    def test_duplicate_is_409_and_not_audited(self):
        uid, name, _ = create()
        r = stack().request("POST", "/admin/users",
                            body={"username": name, "password": new_password()})
        body = assert_problem(self, r, 409)
        self.assertIn(name, body["detail"])
        self.assertEqual(len(audit_rows(uid)), 1)

    def test_bad_bodies_are_422_naming_the_field(self):
        for body, field in (({"username": "has space", "password": new_password()}, "username"),
                            ({"username": new_name()}, "password"),
                            ({"password": new_password()}, "username"),
                            ({"username": new_name(), "password": new_password(), "role": "x"}, "role"),
                            ({"username": new_name(), "password": new_password(), "is_admin": "yes"},
                             "is_admin")):
            with self.subTest(body=body):
                before = stack().psql("SELECT count(*) FROM users")
                r = stack().request("POST", "/admin/users", body=body)
                self.assertIn(field, assert_problem(self, r, 422)["errors"])
                self.assertEqual(stack().psql("SELECT count(*) FROM users"), before)


class PasswordPolicy(unittest.TestCase):
    def post(self, name, password):
        return stack().request("POST", "/admin/users", body={"username": name, "password": password})

    def assert_refused(self, name, password, words):
        r = self.post(name, password)
        body = assert_problem(self, r, 422)
        self.assertIn(words, body["detail"])
        self.assertIn(words, body["errors"]["password"])
        self.assertEqual(stack().psql(f"SELECT count(*) FROM users WHERE username = '{name}'"), "0")

    def test_eleven_characters_refused_twelve_accepted(self):
        self.assert_refused(new_name(), "a" * 11, "at least 12 characters")
        self.assert_refused(new_name(), "é" * 11, "at least 12 characters")  # 22 bytes, 11 characters
        self.assertEqual(self.post(new_name(), "a" * 12).status, 201)
        self.assertEqual(self.post(new_name(), "é" * 12).status, 201)

    def test_the_username_is_refused_in_any_case(self):
        name = "Policy" + uuid.uuid4().hex[:8]
        self.assert_refused(name, name, "must not be the username")
        self.assert_refused(name, name.lower(), "must not be the username")
        self.assert_refused(name, name.upper(), "must not be the username")

    def test_at_most_256_bytes(self):
        self.assert_refused(new_name(), "b" * 257, "at most 256 bytes")
        self.assert_refused(new_name(), "é" * 129, "at most 256 bytes")  # 258 bytes
        self.assertEqual(self.post(new_name(), "b" * 256).status, 201)

    def test_reset_and_change_follow_the_policy(self):
        uid, name, pw = create()
        r = stack().request("PATCH", f"/admin/users/{uid}", body={"password": name.upper()})
        self.assertIn("must not be the username", assert_problem(self, r, 422)["detail"])
        r = stack().request("PATCH", f"/admin/users/{uid}", body={"password": "short"})
        self.assertIn("at least 12 characters", assert_problem(self, r, 422)["detail"])
        cookie, csrf = login(name, pw)
        r = as_user(cookie, csrf, "POST", "/auth/password",
                    body={"current_password": pw, "new_password": "x" * 300})
        self.assertIn("at most 256 bytes", assert_problem(self, r, 422)["errors"]["new_password"])
        self.assertEqual([a[0] for a in audit_rows(uid)], ["create"])
        self.assertEqual(as_user(cookie, csrf, "GET", "/auth/me").status, 200)


class SelfAndLastAdmin(unittest.TestCase):
    def test_nobody_disables_or_demotes_themselves(self):
        uid, name, pw = create(is_admin=True)
        cookie, csrf = login(name, pw)
        for body, words in (({"disabled": True}, "disable yourself"),
                            ({"is_admin": False}, "your own admin rights"),
                            ({"is_admin": False, "disabled": True}, "you cannot")):
            with self.subTest(body=body):
                r = as_user(cookie, csrf, "PATCH", f"/admin/users/{uid}", body=body)
                self.assertIn(words, assert_problem(self, r, 409)["detail"])
        self.assertEqual(stack().psql(f"SELECT is_admin, disabled FROM users WHERE id = {uid}"), "t|f")
        self.assertEqual([a[0] for a in audit_rows(uid)], ["create"])
        self.assertEqual(as_user(cookie, csrf, "GET", "/admin/users").status, 200)

    def test_a_non_admin_gets_403(self):
        uid, name, pw = create()
        cookie, csrf = login(name, pw)
        for method, path, body in (("GET", "/admin/users", None),
                                   ("POST", "/admin/users", {"username": new_name(), "password": new_password()}),
                                   ("PATCH", f"/admin/users/{uid}", {"is_admin": True}),
                                   ("DELETE", f"/admin/users/{uid}/sessions", None)):
            with self.subTest(route=f"{method} {path}"):
                assert_problem(self, as_user(cookie, csrf, method, path, body=body), 403)
        self.assertEqual(stack().psql(f"SELECT is_admin FROM users WHERE id = {uid}"), "f")
        self.assertEqual(len(audit_rows(uid)), 1)


class MutualDemotion(unittest.TestCase):
    """Two admins, the only enabled ones, demote each other at once."""

    def setUp(self):
        s = stack()
        self.p = create(is_admin=True)
        self.q = create(is_admin=True)
        ids = f"{self.p[0]}, {self.q[0]}"
        # Everyone else's admin rights are set aside for the test (no session ends).
        out = s.psql("UPDATE users SET is_admin = false WHERE is_admin AND NOT disabled "
                     f"AND id NOT IN ({ids}) RETURNING id")
        self.others = [int(x) for x in out.split()]
        self.ids = ids

    def tearDown(self):
        if self.others:
            stack().psql("UPDATE users SET is_admin = true WHERE id IN "
                         f"({', '.join(map(str, self.others))})")
        time.sleep(PROPAGATION)  # the suite's admin session is an admin again everywhere

    def restore_pair(self):
        stack().psql(f"UPDATE users SET is_admin = true, disabled = false WHERE id IN ({self.ids})")
        time.sleep(PROPAGATION)

    def race(self, cookies, gate=None):
        """Each admin demotes the other at once; returns [(status, detail)]."""
        (pc, pt), (qc, qt) = cookies
        jobs = [(pc, pt, self.q[0]), (qc, qt, self.p[0])]
        results = [None, None]
        barrier = threading.Barrier(2)

        def run(i):
            cookie, csrf, target = jobs[i]
            barrier.wait(timeout=30)
            r = as_user(cookie, csrf, "PATCH", f"/admin/users/{target}", body={"is_admin": False})
            results[i] = (r.status, r.json().get("detail", "") if r.body else "")
        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        if gate:
            gate()
        for t in threads:
            t.join(timeout=60)
        return results

    def enabled_admins_of_pair(self):
        return int(stack().psql("SELECT count(*) FROM users WHERE is_admin AND NOT disabled "
                                f"AND id IN ({self.ids})"))

    def test_held_together_exactly_one_wins(self):
        """Both requests are held at the admins' row locks by a transaction of
        the test, then let go together: one 200; the other, whose actor was
        demoted by the first, 403 (its rights are re-read inside the write)."""
        s = stack()
        cookies = [login(self.p[1], self.p[2]), login(self.q[1], self.q[2])]
        url = s.settings["PG_ADMIN_URL"].rsplit("/", 1)[0] + "/paintstudio"
        for round_no in range(3):
            holder = subprocess.Popen(["psql", url, "-qAtX", "-v", "ON_ERROR_STOP=1"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                holder.stdin.write(f"BEGIN;\nSELECT id FROM users WHERE id IN ({self.ids}) FOR UPDATE;\n")
                holder.stdin.flush()
                holder.stdout.readline()
                holder.stdout.readline()  # both rows locked by the test

                def gate():
                    s.wait_until(lambda: int(s.psql(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND application_name LIKE 'paint\\_studio%'", admin=True)) >= 2,
                        timeout=30, interval=0.05, what="both requests waiting on the locks")
                    holder.stdin.write("COMMIT;\n")
                    holder.stdin.flush()
                results = self.race(cookies, gate)
            finally:
                holder.stdin.close()
                holder.wait(timeout=30)
            statuses = sorted(r[0] for r in results)
            self.assertEqual(statuses, [200, 403], (round_no, results))
            self.assertIn("admin rights were withdrawn", [r for r in results if r[0] == 403][0][1])
            self.assertEqual(self.enabled_admins_of_pair(), 1)
            self.restore_pair()

    def test_free_running_rounds_keep_an_admin(self):
        cookies = [login(self.p[1], self.p[2]), login(self.q[1], self.q[2])]
        for round_no in range(6):
            results = self.race(cookies)
            for status, _ in results:
                self.assertIn(status, (200, 403, 409), results)
            self.assertEqual(sum(1 for r in results if r[0] == 200), 1, (round_no, results))
            self.assertEqual(self.enabled_admins_of_pair(), 1, (round_no, results))
            self.restore_pair()


class Sessions(unittest.TestCase):
    def test_disabling_ends_the_sessions(self):
        uid, name, pw = create()
        cookie, csrf = login(name, pw)
        self.assertEqual(as_user(cookie, csrf, "GET", "/auth/me").status, 200)
        r = stack().request("PATCH", f"/admin/users/{uid}", body={"disabled": True})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.json()["disabled"])
        self.assertEqual(r.json()["active_sessions"], 0)
        self.assertEqual(stack().psql(f"SELECT count(*) FROM sessions WHERE user_id = {uid}"), "0")
        still_refused(self, cookie, csrf)
        self.assertIsNone(stack().login(name, pw)[0])
        # enabling again brings no old session back
        self.assertEqual(stack().request("PATCH", f"/admin/users/{uid}",
                                         body={"disabled": False}).status, 200)
        still_refused(self, cookie, csrf)
        self.assertIsNotNone(stack().login(name, pw)[0])
        acts = audit_rows(uid)
        self.assertEqual([a[0] for a in acts], ["create", "update", "update"])
        self.assertEqual(acts[1][2], {"disabled": {"old": False, "new": True}})

    def test_a_reset_ends_the_sessions_and_changes_the_password(self):
        uid, name, pw = create()
        cookie, csrf = login(name, pw)
        new_pw = new_password()
        r = stack().request("PATCH", f"/admin/users/{uid}", body={"password": new_pw})
        self.assertEqual(r.status, 200, r)
        still_refused(self, cookie, csrf)
        self.assertIsNone(stack().login(name, pw)[0])
        self.assertIsNotNone(stack().login(name, new_pw)[0])
        action, actor, changes = audit_rows(uid)[-1]
        self.assertEqual((action, changes), ("update", {"password": {"changed": True}}))
        self.assertNotIn("argon2", json.dumps(audit_rows(uid)))

    def test_log_out_everywhere(self):
        uid, name, pw = create()
        sessions = [login(name, pw), login(name, pw)]
        self.assertEqual(listed(uid)["active_sessions"], 2)
        r = stack().request("DELETE", f"/admin/users/{uid}/sessions")
        self.assertEqual(r.status, 204, r)
        self.assertEqual(listed(uid)["active_sessions"], 0)
        for cookie, csrf in sessions:
            still_refused(self, cookie, csrf)
        self.assertIsNotNone(stack().login(name, pw)[0])  # the password still works
        action, _, changes = audit_rows(uid)[-1]
        self.assertEqual((action, changes), ("end_sessions", {"sessions": {"ended": 2}}))

    def test_unknown_and_bad_ids(self):
        for method, path, body in (("PATCH", "/admin/users/999999999", {"disabled": True}),
                                   ("DELETE", "/admin/users/999999999/sessions", None)):
            assert_problem(self, stack().request(method, path, body=body), 404)
        assert_problem(self, stack().request("PATCH", "/admin/users/x1", body={"disabled": True}), 400)
        assert_problem(self, stack().request("DELETE", "/admin/users/0/sessions"), 400)
        uid, _, _ = create()
        r = stack().request("PATCH", f"/admin/users/{uid}", body={})
        assert_problem(self, r, 422)
        self.assertEqual(len(audit_rows(uid)), 1)


class ChangeOwnPassword(unittest.TestCase):
    def test_wrong_current_password(self):
        uid, name, pw = create()
        cookie, csrf = login(name, pw)
        r = as_user(cookie, csrf, "POST", "/auth/password",
                    body={"current_password": "not-the-password", "new_password": new_password()})
        body = assert_problem(self, r, 403)
        self.assertIn("current password is wrong", body["detail"])
        self.assertIn("current_password", body["errors"])
        self.assertEqual(as_user(cookie, csrf, "GET", "/auth/me").status, 200)
        self.assertIsNotNone(stack().login(name, pw)[0])
        self.assertEqual([a[0] for a in audit_rows(uid)], ["create"])

    def test_success_keeps_the_caller_logged_in_and_ends_the_rest(self):
        uid, name, pw = create(is_admin=True)
        cookie, csrf = login(name, pw)
        other = login(name, pw)
        new_pw = new_password()
        r = as_user(cookie, csrf, "POST", "/auth/password",
                    body={"current_password": pw, "new_password": new_pw})
        self.assertEqual(r.status, 200, r)
        new_cookie = r.headers["set-cookie"].split(";", 1)[0]
        new_csrf = r.json()["csrf_token"]
        self.assertNotEqual(new_cookie, cookie)
        self.assertEqual(r.json()["user"]["username"], name)
        self.assertEqual(stack().psql(f"SELECT count(*) FROM sessions WHERE user_id = {uid}"), "1")
        still_refused(self, cookie, csrf)
        still_refused(self, *other)
        for _ in range(4):  # the fresh session works on every process, writes too
            self.assertEqual(as_user(new_cookie, new_csrf, "GET", "/admin/users").status, 200)
        self.assertEqual(as_user(new_cookie, new_csrf, "POST", "/auth/logout").status, 204)
        self.assertIsNone(stack().login(name, pw)[0])
        self.assertIsNotNone(stack().login(name, new_pw)[0])
        action, actor, changes = audit_rows(uid)[-1]
        self.assertEqual((action, actor, changes), ("password", name, {"password": {"changed": True}}))

    def test_same_password_and_missing_fields(self):
        uid, name, pw = create()
        cookie, csrf = login(name, pw)
        r = as_user(cookie, csrf, "POST", "/auth/password",
                    body={"current_password": pw, "new_password": pw})
        self.assertIn("new_password", assert_problem(self, r, 422)["errors"])
        r = as_user(cookie, csrf, "POST", "/auth/password", body={"new_password": new_password()})
        self.assertIn("current_password", assert_problem(self, r, 422)["errors"])
        self.assertEqual(len(audit_rows(uid)), 1)

    def test_wrong_attempts_are_throttled(self):
        uid, name, pw = create()
        cookie, csrf = login(name, pw)
        stack().psql("INSERT INTO login_failures (key, failures, window_start) "
                     f"VALUES ('password:{uid}', 100000, now())")
        r = as_user(cookie, csrf, "POST", "/auth/password",
                    body={"current_password": pw, "new_password": new_password()})
        assert_problem(self, r, 429)
        self.assertGreater(int(r.headers["retry-after"]), 0)
        self.assertIsNotNone(stack().login(name, pw)[0])
        stack().psql(f"DELETE FROM login_failures WHERE key = 'password:{uid}'")

    def test_needs_a_session_and_csrf(self):
        uid, name, pw = create()
        cookie, csrf = login(name, pw)
        body = {"current_password": pw, "new_password": new_password()}
        assert_problem(self, stack().request("POST", "/auth/password", body=body, auth=False,
                                             headers={"Origin": stack().origin}), 401)
        assert_problem(self, as_user(cookie, csrf, "POST", "/auth/password", body=body, token=False), 403)
        self.assertEqual(len(audit_rows(uid)), 1)


class OwnPasswordThroughPatch(unittest.TestCase):
    """PATCH /admin/users/{own id} with a password asks for the current one,
    as POST /auth/password does, and counts wrong ones with its attempts;
    another user's reset does not ask for it."""

    def test_own_password_needs_the_current_one(self):
        uid, name, pw = create(is_admin=True)
        cookie, csrf = login(name, pw)
        path, new_pw = f"/admin/users/{uid}", new_password()
        r = as_user(cookie, csrf, "PATCH", path, body={"password": new_pw})
        self.assertIn("current_password", assert_problem(self, r, 422)["errors"])
        r = as_user(cookie, csrf, "PATCH", path,
                    body={"password": new_pw, "current_password": "not-the-password"})
        body = assert_problem(self, r, 403)
        self.assertEqual(body["detail"], "the current password is wrong")
        self.assertIn("current_password", body["errors"])
        self.assertEqual(stack().psql("SELECT failures FROM login_failures "
                                      f"WHERE key = 'password:{uid}'"), "1")
        r = as_user(cookie, csrf, "PATCH", path, body={"password": pw, "current_password": pw})
        self.assertIn("password", assert_problem(self, r, 422)["errors"])
        self.assertEqual(as_user(cookie, csrf, "GET", "/auth/me").status, 200)
        self.assertEqual([a[0] for a in audit_rows(uid)], ["create"])
        # a change of your own that is not a password needs no current password
        r = as_user(cookie, csrf, "PATCH", path, body={"is_admin": True})
        self.assertEqual(r.status, 200, r)
        r = as_user(cookie, csrf, "PATCH", path, body={"password": new_pw, "current_password": pw})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(stack().psql("SELECT count(*) FROM login_failures "
                                      f"WHERE key = 'password:{uid}'"), "0")
        self.assertIsNone(stack().login(name, pw)[0])
        self.assertIsNotNone(stack().login(name, new_pw)[0])
        action, actor, changes = audit_rows(uid)[-1]
        self.assertEqual((action, actor, changes), ("update", name, {"password": {"changed": True}}))

    def test_own_password_attempts_are_throttled(self):
        uid, name, pw = create(is_admin=True)
        cookie, csrf = login(name, pw)
        stack().psql("INSERT INTO login_failures (key, failures, window_start) "
                     f"VALUES ('password:{uid}', 100000, now())")
        self.addCleanup(stack().psql, f"DELETE FROM login_failures WHERE key = 'password:{uid}'")
        r = as_user(cookie, csrf, "PATCH", f"/admin/users/{uid}",
                    body={"password": new_password(), "current_password": pw})
        assert_problem(self, r, 429)
        self.assertGreater(int(r.headers["retry-after"]), 0)
        self.assertIsNotNone(stack().login(name, pw)[0])

    def test_another_users_reset_needs_no_current_password(self):
        uid, name, _ = create()
        new_pw = new_password()
        r = stack().request("PATCH", f"/admin/users/{uid}", body={"password": new_pw})
        self.assertEqual(r.status, 200, r)
        self.assertIsNotNone(stack().login(name, new_pw)[0])
        r = stack().request("PATCH", f"/admin/users/{uid}",
                            body={"password": new_password(), "current_password": new_pw})
        self.assertIn("current_password", assert_problem(self, r, 422)["errors"])


class CreateAdminIsAudited(unittest.TestCase):
    """The create-admin command records its change in the audit trail, in
    the transaction of the change, as the actor "(cli)" without a user id."""

    def cli(self, name, *flags):
        r = stack().run_binary("create-admin", name, *flags, env={"ADMIN_PASSWORD": new_password()})
        self.assertEqual(r.returncode, 0, r.stderr)

    def entries(self, uid):
        return json.loads(stack().psql(
            "SELECT coalesce(json_agg(json_build_array(action, actor, actor_id, changes) "
            f"ORDER BY id), '[]') FROM audit_log WHERE entity = 'user' AND entity_id = {uid}"))

    def test_create_and_reset_are_recorded(self):
        name = new_name()
        self.cli(name)
        uid = int(stack().psql(f"SELECT id FROM users WHERE username = '{name}'"))
        self.assertEqual(self.entries(uid), [
            ["create", "(cli)", None, {"username": {"old": None, "new": name},
                                       "is_admin": {"old": None, "new": True},
                                       "disabled": {"old": None, "new": False}}]])
        stack().psql(f"UPDATE users SET is_admin = false, disabled = true WHERE id = {uid}")
        self.cli(name)
        self.assertEqual(self.entries(uid)[1:], [
            ["reset", "(cli)", None, {"is_admin": {"old": False, "new": True},
                                      "disabled": {"old": True, "new": False},
                                      "password": {"changed": True}}]])
        self.cli(name, "--if-missing")  # left unchanged: nothing to record
        self.assertEqual(len(self.entries(uid)), 2)
        r = stack().get(f"/admin/audit?user={uid}")
        self.assertEqual([(e["action"], e["actor"]) for e in r.json()["items"]],
                         [("reset", {"id": None, "username": "(cli)"}),
                          ("create", {"id": None, "username": "(cli)"})])


class ListPages(unittest.TestCase):
    """GET /admin/users pages like the other lists (limit 1..200, default
    50, next_cursor, keyset on the id), with no silent cut at 1,000 users."""

    @classmethod
    def setUpClass(cls):
        s = stack()
        cls.prefix = "page" + uuid.uuid4().hex[:8]
        need = max(0, 1010 - int(s.psql("SELECT count(*) FROM users")))
        s.psql("INSERT INTO users (username, password_hash) "  # in SQL: no hashing
               f"SELECT '{cls.prefix}-' || i, 'not-a-hash' FROM generate_series(1, {need}) i")

    @classmethod
    def tearDownClass(cls):
        stack().psql(f"DELETE FROM users WHERE username LIKE '{cls.prefix}-%'")

    def every_id(self):
        return [int(x) for x in stack().psql("SELECT id FROM users ORDER BY id").split()]

    def test_every_user_over_the_pages(self):
        r = stack().get("/admin/users")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.json()["items"]), 50)
        self.assertIsInstance(r.json()["next_cursor"], str)
        want = self.every_id()
        self.assertGreater(len(want), 1000)
        for limit in (None, 200):
            with self.subTest(limit=limit):
                self.assertEqual([u["id"] for u in all_users(limit)], want)
        last = stack().get("/admin/users?limit=200")
        self.assertEqual(len(last.json()["items"]), 200)

    def test_a_user_made_meanwhile_comes_last(self):
        first = stack().get("/admin/users?limit=3").json()
        self.assertEqual(len(first["items"]), 3)
        uid, _, _ = create()
        rest = []
        cursor = first["next_cursor"]
        while cursor:
            page = stack().get("/admin/users?" + urllib.parse.urlencode(
                {"limit": 200, "cursor": cursor})).json()
            rest += page["items"]
            cursor = page["next_cursor"]
        ids = [u["id"] for u in first["items"] + rest]
        self.assertEqual(ids, self.every_id())
        self.assertEqual(ids[-1], uid)

    def test_bad_parameters_are_400_naming_each(self):
        audit_cursor = stack().get("/admin/audit?limit=1").json()["next_cursor"]
        for k, v in [("limit", "0"), ("limit", "201"), ("limit", "x"), ("cursor", ""),
                     ("cursor", "bm90LWEtY3Vyc29y"), ("cursor", audit_cursor), ("sort", "id")]:
            with self.subTest(param=k, value=v):
                r = stack().get("/admin/users?" + urllib.parse.urlencode({k: v}))
                self.assertEqual(list(assert_problem(self, r, 400)["errors"]), [k])


if __name__ == "__main__":
    unittest.main()
