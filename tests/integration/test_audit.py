"""The audit trail through nginx: one entry per acknowledged paint write,
with the changed fields' old and new values and who made it; none for a
write that failed; GET /admin/audit's filters, keyset pages and bad
parameters; and, across a kill -9 of the service under concurrent
writes, an entry for every acknowledged write and none for a write that
did not commit."""
import os
import signal
import threading
import time
import unittest
import urllib.parse
import uuid

from harness import stack
from test_auth import make_user
from test_basics import assert_problem
from test_paints_api import new_paint


def audit(**params):
    r = stack().get("/admin/audit?" + urllib.parse.urlencode(params))
    assert r.status == 200, r
    return r.json()


def entries(pid):
    """Every entry of paint pid, oldest first (through the API, all pages)."""
    out, cursor = [], None
    while True:
        q = {"paint": pid, "limit": 200}
        if cursor:
            q["cursor"] = cursor
        page = audit(**q)
        out += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return list(reversed(out))


def db_count(pid):
    return int(stack().psql(
        f"SELECT count(*) FROM audit_log WHERE entity = 'paint' AND entity_id = {pid}"))


def admin_id():
    return int(stack().psql("SELECT id FROM users WHERE username = 'admin'"))


class WhatIsRecorded(unittest.TestCase):
    def test_create_records_every_field_as_new(self):
        p = new_paint(description="first")
        (e,) = entries(p["id"])
        self.assertEqual(e["action"], "create")
        self.assertEqual(e["entity"], "paint")
        self.assertEqual(e["entity_id"], p["id"])
        self.assertEqual(e["actor"], {"id": admin_id(), "username": "admin"})
        self.assertRegex(e["at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        ch = e["changes"]
        self.assertEqual(set(ch), {"name", "brand", "color_code", "color_type", "color_family",
                                   "image_url", "stock", "price", "description", "color_preview",
                                   "low_stock_threshold"})
        self.assertEqual(ch["name"], {"old": None, "new": p["name"]})
        self.assertEqual(ch["low_stock_threshold"], {"old": None, "new": None})  # the default applies
        self.assertEqual(ch["stock"], {"old": None, "new": 10})
        self.assertEqual(ch["price"], {"old": None, "new": 12.5})
        self.assertEqual(ch["description"], {"old": None, "new": "first"})

    def test_put_patch_stock_delete_record_old_and_new(self):
        p = new_paint()
        pid = p["id"]
        s = stack()
        body = dict(p, name=p["name"] + " v2", price=19.99)
        r = s.request("PUT", f"/admin/paints/{pid}", body=body, headers={"If-Match": '"v1"'})
        self.assertEqual(r.status, 200, r)
        r = s.request("PATCH", f"/admin/paints/{pid}", body={"brand": "Other", "description": "d"})
        self.assertEqual(r.status, 200, r)
        r = s.request("POST", f"/admin/paints/{pid}/stock", body={"delta": -3})
        self.assertEqual(r.status, 200, r)
        r = s.request("DELETE", f"/admin/paints/{pid}")
        self.assertEqual(r.status, 204, r)
        es = entries(pid)
        self.assertEqual([e["action"] for e in es], ["create", "put", "patch", "stock", "delete"])
        self.assertEqual(es[1]["changes"], {"name": {"old": p["name"], "new": p["name"] + " v2"},
                                            "price": {"old": 12.5, "new": 19.99}})
        self.assertEqual(es[2]["changes"], {"brand": {"old": "TestBrand", "new": "Other"},
                                            "description": {"old": "", "new": "d"}})
        self.assertEqual(es[3]["changes"], {"stock": {"old": 10, "new": 7}})
        gone = es[4]["changes"]
        self.assertEqual(gone["name"], {"old": p["name"] + " v2", "new": None})
        self.assertEqual(gone["stock"], {"old": 7, "new": None})
        self.assertEqual(gone["brand"], {"old": "Other", "new": None})
        self.assertTrue(all(v["new"] is None for v in gone.values()))
        ids = [e["id"] for e in es]
        self.assertEqual(ids, sorted(ids))

    def test_failed_writes_record_nothing(self):
        s = stack()
        p = new_paint(stock=5)
        pid = p["id"]
        self.assertEqual(db_count(pid), 1)
        cases = [
            ("PUT", f"/admin/paints/{pid}", dict(p, name="x"), {"If-Match": '"v9"'}, 412),
            ("PATCH", f"/admin/paints/{pid}", {"name": "x"}, {"If-Match": '"v9"'}, 412),
            ("DELETE", f"/admin/paints/{pid}", None, {"If-Match": '"v9"'}, 412),
            ("POST", f"/admin/paints/{pid}/stock", {"delta": -6}, None, 409),
            ("POST", f"/admin/paints/{pid}/stock", {"delta": 1000000}, None, 409),
            ("PATCH", f"/admin/paints/{pid}", {"stock": -1}, None, 422),
            ("PUT", f"/admin/paints/{pid}", {"name": ""}, None, 422),
            ("POST", f"/admin/paints/{pid}/stock", {"delta": 0}, None, 422),
        ]
        for method, path, body, headers, status in cases:
            r = s.request(method, path, body=body, headers=headers)
            self.assertEqual(r.status, status, (method, path, r))
        self.assertEqual(db_count(pid), 1)
        self.assertEqual(s.psql(f"SELECT version FROM paints WHERE id = {pid}"), "1")
        paint_entries = "SELECT count(*) FROM audit_log WHERE entity = 'paint'"
        before = int(s.psql(paint_entries))
        absent = int(s.psql("SELECT coalesce(max(id), 0) + 1000000 FROM paints"))
        for method, path, body in [("PUT", f"/admin/paints/{absent}", {"name": "x"}),
                                   ("PATCH", f"/admin/paints/{absent}", {"name": "x"}),
                                   ("DELETE", f"/admin/paints/{absent}", None),
                                   ("POST", f"/admin/paints/{absent}/stock", {"delta": 1})]:
            r = s.request(method, path, body=body)
            self.assertEqual(r.status, 404, (method, r))
        r = s.request("POST", "/admin/paints", body={"name": "x", "stock": 2.5})
        self.assertEqual(r.status, 422, r)
        self.assertEqual(int(s.psql(paint_entries)), before)


class TheList(unittest.TestCase):
    def test_keyset_pages_have_no_duplicates_or_gaps(self):
        s = stack()
        pid = new_paint()["id"]
        for i in range(24):
            r = s.request("POST", f"/admin/paints/{pid}/stock", body={"delta": 1})
            self.assertEqual(r.status, 200, r)
        seen, cursor, pages = [], None, 0
        while True:
            q = {"paint": pid, "limit": 7}
            if cursor:
                q["cursor"] = cursor
            page = audit(**q)
            pages += 1
            self.assertLessEqual(len(page["items"]), 7)
            seen += [e["id"] for e in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        self.assertEqual(pages, 4)
        self.assertEqual(len(seen), 25)
        self.assertEqual(len(set(seen)), 25)
        self.assertEqual(seen, sorted(seen, reverse=True))
        want = s.psql(f"SELECT string_agg(id::text, ',' ORDER BY id DESC) FROM audit_log "
                      f"WHERE entity = 'paint' AND entity_id = {pid}")
        self.assertEqual(",".join(map(str, seen)), want)
        self.assertEqual(len(audit(paint=pid)["items"]), 25)  # default limit 50

    def test_filters(self):
        s = stack()
        name, pw = make_user(admin=True)
        cookie, csrf, r = s.login(name, pw)
        self.assertIsNotNone(cookie, r)
        uid = int(s.psql(f"SELECT id FROM users WHERE username = '{name}'"))
        pid = new_paint()["id"]
        r = s.request("PATCH", f"/admin/paints/{pid}", body={"stock": 77}, auth=False,
                      headers={"Cookie": cookie, "X-CSRF-Token": csrf, "Origin": s.origin,
                               "Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r)
        by_user = audit(actor=uid, paint=pid)["items"]
        self.assertEqual(len(by_user), 1)
        self.assertEqual(by_user[0]["actor"], {"id": uid, "username": name})
        self.assertEqual(by_user[0]["changes"], {"stock": {"old": 10, "new": 77}})
        everything_by_user = audit(actor=uid, limit=200)["items"]
        self.assertIn(by_user[0], everything_by_user)
        self.assertTrue(all(e["actor"]["id"] == uid for e in everything_by_user))
        mine = audit(paint=pid, actor=admin_id())["items"]
        self.assertEqual([e["action"] for e in mine], ["create"])
        self.assertTrue(all(e["entity"] == "user" for e in audit(user=uid, limit=200)["items"]))
        # time: since is inclusive, until exclusive
        es = entries(pid)
        first, second = es[0]["at"], es[1]["at"]
        self.assertEqual([e["id"] for e in audit(paint=pid, since=second)["items"]], [es[1]["id"]])
        self.assertEqual([e["id"] for e in audit(paint=pid, until=second)["items"]], [es[0]["id"]])
        self.assertEqual(len(audit(paint=pid, since=first, until="9999-12-31T23:59:59Z")["items"]), 2)
        self.assertEqual(audit(paint=pid, since="2000-01-01T00:00:00+01:00",
                               until="2000-01-02T00:00:00.5-05:30")["items"], [])

    def test_bad_parameters_are_400_naming_each(self):
        s = stack()
        bad = {"paint": "abc", "actor": "0", "user": "-1", "operation": "x1", "since": "yesterday",
               "until": "2026-02-30T00:00:00Z", "limit": "201", "cursor": "bm90LWEtY3Vyc29y",
               "colour": "red"}
        r = s.get("/admin/audit?" + urllib.parse.urlencode(bad))
        assert_problem(self, r, 400)
        self.assertEqual(set(r.json()["errors"]), set(bad))
        for k, v in [("limit", "0"), ("since", "2026-01-01"), ("since", "2026-01-01T10:00:00"),
                     ("since", "2026-13-01T00:00:00Z"), ("until", "2026-01-01T24:00:00Z"),
                     ("since", "2026-01-01T10:00:00+16:00"), ("paint", "01"),
                     ("paint", "9223372036854775808"), ("cursor", "")]:
            r = s.get("/admin/audit?" + urllib.parse.urlencode({k: v}))
            self.assertEqual(r.status, 400, (k, v, r))
            self.assertEqual(list(r.json()["errors"]), [k], (k, v))
        for v in ["2024-02-29T00:00:00Z", "2026-01-01T10:00Z", "2026-01-01T10:00:00.123456+05:30"]:
            self.assertEqual(s.get("/admin/audit?" + urllib.parse.urlencode({"since": v})).status,
                             200, v)

    def test_admins_only(self):
        s = stack()
        self.assertEqual(s.get("/admin/audit", auth=False).status, 401)
        name, pw = make_user(admin=False)
        cookie, _, r = s.login(name, pw)
        self.assertIsNotNone(cookie, r)
        r = s.get("/admin/audit", auth=False, headers={"Cookie": cookie})
        self.assertEqual(r.status, 403, r)


class Crash(unittest.TestCase):
    def test_kill_9_under_writes_loses_no_entry_and_invents_none(self):
        """Writers PATCH and change stock on their own paints while both
        service processes are killed with SIGKILL. Afterwards every write
        answered 2xx has its entry (matched on the unique value it wrote),
        and each paint has exactly one entry per committed version."""
        s = stack()
        tag = uuid.uuid4().hex[:8]
        targets = [new_paint(stock=0)["id"] for _ in range(4)]
        acked = {t: [] for t in targets}  # (kind, unique value) answered 2xx
        counts = {"ok": 0, "failed": 0}
        lock = threading.Lock()
        stop = threading.Event()

        def writer(w):
            t, n = targets[w], 0
            while not stop.is_set():
                n += 1
                try:
                    if n % 2:
                        value = f"{tag}-{w}-{n}"
                        r = s.request("PATCH", f"/admin/paints/{t}", timeout=30,
                                      body={"description": value})
                    else:
                        r = s.request("POST", f"/admin/paints/{t}/stock", timeout=30,
                                      body={"delta": 1})
                        value = r.json()["stock"] if r.status == 200 else None
                    with lock:
                        if r.status == 200:
                            acked[t].append(("patch" if n % 2 else "stock", value))
                            counts["ok"] += 1
                        else:
                            counts["failed"] += 1
                except Exception:
                    with lock:
                        counts["failed"] += 1
                    time.sleep(0.05)

        pids = []
        for i in (1, 2):
            with open(os.path.join(s.dir, "run", f"app-{i}.pid")) as f:
                pids.append(int(f.read()))
        threads = [threading.Thread(target=writer, args=(w,)) for w in range(len(targets))]
        for t in threads:
            t.start()
        try:
            time.sleep(3)
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            time.sleep(1)
            s.script("app-stop")
            s.script("app-start")
            s.wait_serving(what="restart")
            time.sleep(2)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
        print(f"\n    crash: {counts['ok']} writes answered 2xx, {counts['failed']} failed")
        self.assertGreater(counts["ok"], 20)
        self.assertGreater(counts["failed"], 0)  # the kill did cut writes off
        for t in targets:
            rows = s.psql(f"SELECT action, coalesce(changes->'description'->>'new', "
                          f"changes->'stock'->>'new') FROM audit_log "
                          f"WHERE entity = 'paint' AND entity_id = {t} ORDER BY id")
            logged = [tuple(line.split("|", 1)) for line in rows.splitlines()]
            for kind, value in acked[t]:
                self.assertIn((kind, str(value)), logged, f"paint {t}: acknowledged, no entry")
            version = int(s.psql(f"SELECT version FROM paints WHERE id = {t}"))
            self.assertEqual(len(logged), version, f"paint {t}: entries vs versions")
            self.assertEqual(logged[0][0], "create")
            stock = int(s.psql(f"SELECT stock FROM paints WHERE id = {t}"))
            self.assertEqual(sum(1 for k, _ in logged if k == "stock"), stock)



class AppendOnly(unittest.TestCase):
    """As the service's own database role (the stack's DATABASE_URL, not a
    superuser) entries can be added and read, never changed, deleted or
    truncated (migration 0011's trigger); deleting a user keeps the entries
    they made, with their actor id."""

    def refused(self, sql):
        """sql fails in a transaction rolled back anyway (so that, were it
        allowed, the test would fail without changing the trail)."""
        with self.assertRaises(RuntimeError) as cm:
            stack().psql(f"BEGIN; {sql}; ROLLBACK;")
        self.assertIn("audit_log is append-only", str(cm.exception))

    def test_update_delete_and_truncate_are_refused(self):
        s = stack()
        self.assertEqual(s.psql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"), "f")
        pid = new_paint()["id"]
        (e,) = entries(pid)
        one = f"SELECT actor_id, actor, entity_id, action, changes::text FROM audit_log WHERE id = {e['id']}"
        before, total = s.psql(one), s.psql("SELECT count(*) FROM audit_log")
        for sql in (f"UPDATE audit_log SET action = 'forged' WHERE id = {e['id']}",
                    f"UPDATE audit_log SET actor_id = NULL WHERE id = {e['id']}",
                    f"DELETE FROM audit_log WHERE id = {e['id']}",
                    "DELETE FROM audit_log",
                    "TRUNCATE audit_log"):
            with self.subTest(sql=sql):
                self.refused(sql)
        self.assertEqual(s.psql(one), before)
        self.assertEqual(s.psql("SELECT count(*) FROM audit_log"), total)
        r = s.request("POST", f"/admin/paints/{pid}/stock", body={"delta": 1})
        self.assertEqual(r.status, 200, r)  # and the service still writes it
        self.assertEqual([x["action"] for x in entries(pid)], ["create", "stock"])

    def test_deleting_a_user_keeps_their_entries(self):
        s = stack()
        name, pw = make_user(admin=True)
        cookie, csrf, r = s.login(name, pw)
        self.assertIsNotNone(cookie, r)
        uid = int(s.psql(f"SELECT id FROM users WHERE username = '{name}'"))
        r = s.request("POST", "/admin/paints", auth=False, body={"name": "by " + name},
                      headers={"Cookie": cookie, "X-CSRF-Token": csrf, "Origin": s.origin})
        self.assertEqual(r.status, 201, r)
        s.psql(f"DELETE FROM users WHERE id = {uid}")  # the service's role may delete a user
        # the paint's entry (the login's is the user's own, entity user)
        self.assertEqual(s.psql(f"SELECT count(*) FROM audit_log WHERE actor_id = {uid} "
                                "AND entity = 'paint'"), "1")
        (e,) = [x for x in audit(actor=uid)["items"] if x["entity"] == "paint"]
        self.assertEqual((e["entity_id"], e["actor"]), (r.json()["id"], {"id": uid, "username": name}))


if __name__ == "__main__":
    unittest.main()
