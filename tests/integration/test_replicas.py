"""Read replicas, for real: a stack of its own (the other suites keep the
plain one) with a PostgreSQL streaming replica made by pg_basebackup, two
service processes and nginx.

- Reads go to the replica: every paint read is logged as served by
  replica1, the replica's pg_stat_activity shows both processes' pools, and
  the primary's pg_stat_statements counts no paint read meanwhile.
- Lag: replay paused on the replica; a user writes through one process and
  reads at once through the other: the new version every time, over 200
  rounds, and never a 304 for the version before. Meanwhile another user's
  reads go to the replica until the lag limit, to the primary after it.
- The cache-fill race with a lagging replica (inside a large lag limit, so
  only the fill rule protects): 0 stale values ever stored in Redis and 0
  stale reads over 200 rounds, while fills still use the replica when it
  has replayed; then Redis stopped: reads around the cache go to the
  primary, never older.
- The replica killed with -9 under load: only 2xx, and reads return to it
  after it restarts.

Which server served a request: the request log's "db" field, found by the
X-Request-Id the response carries.
"""
import glob
import json
import os
import subprocess
import threading
import time
import unittest

import fcgi
import harness

ROUNDS = 200
LAG_LIMIT_MS = 1000


class Replicas(unittest.TestCase):
    s = None

    @classmethod
    def setUpClass(cls):
        # The cache off at first: every read reaches a database (the cache's own
        # case is test_d, with Redis on).
        cls.s = harness.Stack(binary=harness.stack().binary, processes=2, seed=300, replicas=1,
                              extra_env={"REDIS_URL": "", "DB_REPLICA_MAX_LAG_MS": str(LAG_LIMIT_MS)})
        try:
            cls.s.start()
        except Exception:
            print(cls.s.tail_logs())
            cls.s.stop()
            cls.s.cleanup()
            raise
        cls.socks = [os.path.join(cls.s.dir, "run", f"app-{i}.sock") for i in (1, 2)]
        cls.host = f"127.0.0.1:{cls.s.https_port}"
        r = cls.s.run_binary("create-admin", "bob", env={"ADMIN_PASSWORD": "bob-password-for-replicas"})
        assert r.returncode == 0, r.stderr
        cls.wait_usable()

    @classmethod
    def tearDownClass(cls):
        s = cls.s
        try:
            s.script("replica-start", "1", check=False)
            s.stop()
            reports = s.sanitizer_reports()
            if reports:
                raise AssertionError("sanitizer reports in the replica stack's logs:\n" + reports)
        finally:
            if os.environ.get("KEEP_STACK") != "1":
                s.cleanup()

    # -- helpers -------------------------------------------------------------
    @classmethod
    def pool_of(cls, proc):
        cookie, csrf = cls.session("admin")
        r = fcgi.request(cls.socks[proc], "GET", "/admin/pool", host=cls.host,
                         headers={"Cookie": cookie})
        assert r.status == 200, r
        return r.json()

    @classmethod
    def wait_usable(cls, timeout=30):
        def ok():
            return all(cls.pool_of(p)["replicas"][0]["usable"] for p in (0, 1))
        cls.s.wait_until(ok, timeout=timeout, what="replica1 usable on both processes")

    _sessions = {}

    @classmethod
    def session(cls, user):
        if user not in cls._sessions:
            pw = harness.ADMIN_PASSWORD if user == "admin" else "bob-password-for-replicas"
            cookie, csrf, r = cls.s.login(user, pw)
            assert cookie, r
            cls._sessions[user] = (cookie, csrf)
        return cls._sessions[user]

    def fc(self, proc, method, uri, cookies, csrf=None, body=b"", headers=None):
        h = {"Cookie": "; ".join(cookies), "Origin": "https://" + self.host}
        if method != "GET":
            h["X-CSRF-Token"] = csrf
        h.update(headers or {})
        return fcgi.request(self.socks[proc], method, uri, body=body, host=self.host, headers=h)

    def db_of(self, request_ids, timeout=5):
        """request id -> the "db" its log line names."""
        want, found = set(request_ids), {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in glob.glob(os.path.join(self.s.dir, "log", "app-*.log")):
                with open(p, errors="replace") as f:
                    for line in f:
                        if '"request_id"' not in line or '"db"' not in line:
                            continue
                        try:
                            o = json.loads(line)
                        except ValueError:
                            continue
                        if o.get("request_id") in want:
                            found[o["request_id"]] = o.get("db")
            if len(found) == len(want):
                break
            time.sleep(0.1)
        return found

    def paint_reads(self, where):
        """Calls of statements reading paints on the primary or the replica
        (pg_stat_statements counts at once, on each server separately)."""
        sql = ("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query ILIKE '%from paints%' "
               "AND query NOT ILIKE '%pg_stat_statements%' AND query NOT ILIKE '%with w as%' "
               "AND query NOT ILIKE '%for update%'")
        if where == "primary":
            return int(self.s.psql(sql, admin=True))
        return int(self.s.replica_psql(1, sql))

    def replay(self, pause):
        self.s.replica_psql(1, "SELECT pg_wal_replay_pause()" if pause else "SELECT pg_wal_replay_resume()")

    def new_paint(self, name):
        cookie, csrf = self.session("admin")
        r = self.fc(0, "POST", "/admin/paints", [cookie], csrf, body={"name": name, "stock": 1})
        self.assertEqual(r.status, 201, r)
        return r.json()["id"]

    # -- tests ---------------------------------------------------------------
    def test_0_check_command_reports_each_replica(self):
        """`paintstudio check` connects to every replica and says whether it
        streams; a URL that leads to a server not in recovery (here the
        primary itself) is a failure, named."""
        urls = self.s.settings["DATABASE_REPLICA_URLS"]
        migrations = os.path.join(harness.REPO, "migrations")
        r = self.s.run_binary("check", migrations, env={"DATABASE_REPLICA_URLS": urls})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"replica1\s+OK\s+streaming, replayed [0-9A-F]+/[0-9A-F]+")
        r = self.s.run_binary("check", migrations,
                              env={"DATABASE_REPLICA_URLS": urls + "," + self.s.settings["DATABASE_URL"]})
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"replica2\s+FAIL\s+not a standby")

    def test_a_reads_go_to_the_replica(self):
        paint = self.new_paint("replica read")
        time.sleep(2.5)  # the replica sampled past the insert
        cookie, _ = self.session("bob")
        primary0, replica0 = self.paint_reads("primary"), self.paint_reads("replica")
        rids = []
        for i in range(60):
            uri = f"/admin/paints/{paint}" if i % 3 else f"/admin/paints?limit=5&brand=b{i}"
            r = self.fc(i % 2, "GET", uri, [cookie])
            self.assertEqual(r.status, 200, r)
            rids.append(r.headers["x-request-id"])
        dbs = self.db_of(rids)
        self.assertEqual(len(dbs), len(rids), "every request logged")
        self.assertEqual(set(dbs.values()), {"replica1"}, dbs)
        primary1, replica1 = self.paint_reads("primary"), self.paint_reads("replica")
        print(f"\n  paint reads: primary +{primary1 - primary0}, replica +{replica1 - replica0}")
        self.assertEqual(primary1 - primary0, 0, "the primary served no paint read")
        self.assertGreaterEqual(replica1 - replica0, len(rids))
        names = self.s.replica_psql(1, "SELECT DISTINCT application_name FROM pg_stat_activity "
                                       "WHERE application_name LIKE 'paint%'").split()
        for n in ("paint_studio-1", "paint_studio-2"):
            self.assertIn(n, names, f"the replica shows {n}'s pool: {names}")
        # the operator's views name the pool
        pool = self.pool_of(0)
        self.assertEqual(pool["name"], "primary")
        self.assertEqual(pool["replicas"][0]["name"], "replica1")
        self.assertGreater(pool["replicas"][0]["reads"], 0)
        self.assertGreater(pool["replicas"][0]["opened"], 0)
        st = subprocess.run([self.s.binary, "status"], capture_output=True, text=True, timeout=30,
                            env=dict(self.s.env, FCGI_LISTEN="unix:" + self.socks[0]))
        self.assertIn("replica1", st.stdout, st.stdout + st.stderr)
        self.assertIn("in use", st.stdout)

    def test_b_read_your_writes_while_the_replica_lags(self):
        paint = self.new_paint("replica ryw")
        time.sleep(2.5)
        a_cookie, a_csrf = self.session("admin")
        b_cookie, _ = self.session("bob")
        stop = threading.Event()
        b_reads = []  # (seconds since the pause, request id, version)

        self.replay(True)
        t_pause = time.monotonic()
        try:
            def reader():
                while not stop.is_set():
                    t = time.monotonic() - t_pause
                    r = self.fc(int(t * 10) % 2, "GET", f"/admin/paints/{paint}", [b_cookie])
                    if r.status == 200:
                        b_reads.append((t, r.headers["x-request-id"], r.json()["version"]))
                    else:
                        b_reads.append((t, r.headers.get("x-request-id"), -r.status))
                    time.sleep(0.02)
            th = threading.Thread(target=reader)
            th.start()
            lsn_cookie, stale, not_modified, a_rids = None, [], 0, []
            for k in range(ROUNDS):
                writer, reader_proc = k % 2, 1 - k % 2
                cookies = [a_cookie] + ([lsn_cookie] if lsn_cookie else [])
                w = self.fc(writer, "POST", f"/admin/paints/{paint}/stock", cookies, a_csrf,
                            body={"delta": 1})
                self.assertEqual(w.status, 200, w)
                version = w.json()["version"]
                self.assertIn("set-cookie", w.headers, "a write gives the session its position")
                lsn_cookie = w.headers["set-cookie"].split(";", 1)[0]
                self.assertTrue(lsn_cookie.startswith("__Host-ps_lsn="), lsn_cookie)
                # at once, through the other process, as the same user, with the ETag
                # of the version before the write: never a 304, never older
                r = self.fc(reader_proc, "GET", f"/admin/paints/{paint}", [a_cookie, lsn_cookie],
                            headers={"If-None-Match": f'"v{version - 1}"'})
                a_rids.append(r.headers.get("x-request-id"))
                if r.status == 304:
                    not_modified += 1
                elif r.status != 200 or r.json()["version"] < version:
                    stale.append((k, version, r.status, r.body[:120]))
            t_writes = time.monotonic() - t_pause
            while time.monotonic() - t_pause < LAG_LIMIT_MS / 1000 + 3.5:
                time.sleep(0.1)
        finally:
            stop.set()
            th.join()
            self.replay(False)
        self.assertEqual(stale, [], f"{len(stale)} of {ROUNDS} reads missed the user's own write")
        self.assertEqual(not_modified, 0, "a 304 for the version before the user's write")
        a_dbs = self.db_of([x for x in a_rids if x])
        print(f"\n  {ROUNDS} write-then-read rounds in {t_writes:.1f}s: 0 stale; "
              f"the writer's reads: {sorted(set(a_dbs.values()))}")
        self.assertNotIn("replica1", a_dbs.values(), "the paused replica never serves the writer")
        dbs = self.db_of([rid for _, rid, _ in b_reads if rid])
        early = [(t, dbs.get(rid), v) for t, rid, v in b_reads if t < LAG_LIMIT_MS / 1000 * 0.8]
        late = [(t, dbs.get(rid), v) for t, rid, v in b_reads if t > LAG_LIMIT_MS / 1000 + 2.2]
        on_replica = [t for t, rid, v in b_reads if dbs.get(rid) == "replica1"]
        print(f"  another user's reads: {len(b_reads)}, on the replica until "
              f"{max(on_replica, default=0):.2f}s after the pause (limit {LAG_LIMIT_MS} ms, "
              f"sampled once a second), then the primary")
        self.assertTrue(early and all(db == "replica1" for _, db, _ in early), early[:5])
        self.assertTrue(late and all(db == "primary" for _, db, _ in late), late[:5])
        self.assertTrue(all(v > 0 for _, _, v in b_reads), "every read answered 200")
        self.assertLess(max(on_replica), LAG_LIMIT_MS / 1000 + 2.2)
        self.wait_usable()

    def test_c_replica_killed_under_load(self):
        paint = self.new_paint("replica kill")
        time.sleep(2.5)
        cookie, _ = self.session("bob")
        stop = threading.Event()
        results, lock = [], threading.Lock()

        def load(n):
            while not stop.is_set():
                t = time.monotonic()
                try:
                    r = self.s.get(f"/admin/paints/{paint}" if n % 2 else "/admin/paints?limit=10",
                                   auth=False, headers={"Cookie": cookie}, timeout=30)
                    st, rid = r.status, r.headers.get("x-request-id")
                except OSError as e:
                    st, rid = repr(e), None
                with lock:
                    results.append((t, st, rid))
        threads = [threading.Thread(target=load, args=(n,)) for n in range(6)]
        t0 = time.monotonic()
        for th in threads:
            th.start()
        try:
            time.sleep(2)
            self.s.script("replica-kill", "1")
            t_kill = time.monotonic()
            time.sleep(3)
            self.s.script("replica-start", "1")
            t_back = time.monotonic()
            time.sleep(4)
        finally:
            stop.set()
            for th in threads:
                th.join()
        bad = [(round(t - t0, 2), st) for t, st, _ in results if not (isinstance(st, int) and 200 <= st < 300)]
        print(f"\n  {len(results)} reads across the kill and restart, {len(bad)} not 2xx")
        self.assertEqual(bad, [], "only 2xx while the replica died and came back")
        # after the restart, reads return to the replica
        self.wait_usable()
        rids = []
        for i in range(10):
            r = self.fc(i % 2, "GET", f"/admin/paints/{paint}", [cookie])
            self.assertEqual(r.status, 200, r)
            rids.append(r.headers["x-request-id"])
        self.assertEqual(set(self.db_of(rids).values()), {"replica1"})
        during = self.db_of([rid for t, _, rid in results if rid and t_kill + 1.5 < t < t_back - 0.5])
        self.assertTrue(during and set(during.values()) == {"primary"},
                        f"while the replica was down: {set(during.values())}")
        fallbacks = sum(self.pool_of(p)["replicas"][0]["fallbacks"] for p in (0, 1))
        print(f"  requests the dying replica failed, answered by the primary: {fallbacks}")

    def test_d_cache_fill_race_with_a_lagging_replica(self):
        s = self.s
        # Redis on, and a lag limit so large that the lagging replica stays in
        # use: only the fill rule (cache.c, piece R) keeps old values out.
        restore = s.restart_apps(REDIS_URL=f"redis://:{s.settings['REDIS_PASSWORD']}@127.0.0.1:{s.redis_port}/0",
                                 DB_REPLICA_MAX_LAG_MS="600000")
        try:
            self.wait_usable()
            a_cookie, a_csrf = self.session("admin")
            b_cookie, _ = self.session("bob")
            paints = [self.new_paint(f"fill race {i}") for i in range(4)]
            time.sleep(2.5)
            # fills use the replica once it replayed the last invalidation
            rids = []
            for p in paints:
                for proc in (0, 1):
                    r = self.fc(proc, "GET", f"/admin/paints/{p}", [b_cookie])
                    self.assertEqual(r.status, 200, r)
                    if r.headers.get("x-cache") == "miss":
                        rids.append(r.headers["x-request-id"])
            fills = self.db_of(rids)
            print(f"\n  fills before the pause: {sorted(fills.values())}")
            self.assertIn("replica1", fills.values(), "a fill reads the replica when it may")

            def stored_version(p):
                out = subprocess.run(["redis-cli", "-p", str(s.redis_port), "--scan", "--pattern",
                                      f"ps:*:paint:{p}"], capture_output=True, text=True,
                                     timeout=10).stdout.split()
                vs = []
                for key in out:
                    if ":lease:" in key:
                        continue
                    v = subprocess.run(["redis-cli", "-p", str(s.redis_port), "GET", key],
                                       capture_output=True, text=True, timeout=10).stdout
                    if v.strip() and v.strip() != "-":
                        vs.append(int(v.split("\n", 1)[0]))
                return max(vs, default=None)

            info = {}
            for section in ("server", "replication"):
                out = subprocess.run(["redis-cli", "-p", str(s.redis_port), "INFO", section],
                                     capture_output=True, text=True, timeout=10).stdout
                info.update(line.split(":", 1) for line in out.splitlines() if ":" in line)
            pfx = "ps:" + info["run_id"].strip()[:12] + info["master_replid"].strip()[:12] + ":"
            self.replay(True)
            stale, around, stored_checks, served, held = [], {}, 0, {}, 0
            try:
                for k in range(ROUNDS):
                    p = paints[k % len(paints)]
                    writer, reader = k % 2, 1 - k % 2
                    w = self.fc(writer, "POST", f"/admin/paints/{p}/stock", [a_cookie], a_csrf,
                                body={"delta": 1})
                    self.assertEqual(w.status, 200, w)
                    version = w.json()["version"]
                    if k % 10 == 9:
                        # another fill's lease is held (on another process, or
                        # the request's own before it was parked): the read,
                        # which may not store, is still bound by the position
                        subprocess.run(["redis-cli", "-p", str(s.redis_port), "SET",
                                        f"{pfx}lease:paint:{p}", "another-fill", "PX", "3000"],
                                       capture_output=True, timeout=10, check=True)
                        held += 1
                    # another user (no position of their own) misses and fills at once
                    r = self.fc(reader, "GET", f"/admin/paints/{p}", [b_cookie])
                    self.assertEqual(r.status, 200, r)
                    served[r.headers["x-request-id"]] = r.headers.get("x-cache")
                    if r.json()["version"] < version:
                        stale.append(("read", k, r.json()["version"], version, r.headers.get("x-cache")))
                    sv = stored_version(p)
                    if sv is not None:
                        stored_checks += 1
                        if sv < version:
                            stale.append(("stored", k, sv, version))
                lag = max(self.pool_of(p)["replicas"][0]["lag_ms"] or 0 for p in (0, 1))
                usable = all(self.pool_of(p)["replicas"][0]["usable"] for p in (0, 1))
                # Redis lost, the replica still lagging and in use: a read
                # around the cache knows no position, so the primary answers
                s.script("redis-stop")
                try:
                    for k in range(ROUNDS // 10):
                        p = paints[k % len(paints)]
                        w = self.fc(k % 2, "POST", f"/admin/paints/{p}/stock", [a_cookie], a_csrf,
                                    body={"delta": 1})
                        self.assertEqual(w.status, 200, w)
                        r = self.fc(1 - k % 2, "GET", f"/admin/paints/{p}", [b_cookie])
                        self.assertEqual(r.status, 200, r)
                        self.assertEqual(r.headers.get("x-cache"), "bypass", r)
                        around[r.headers["x-request-id"]] = r.json()["version"] < w.json()["version"]
                finally:
                    s.script("redis-start")
            finally:
                self.replay(False)
            dbs = self.db_of(list(served))
            around_dbs = self.db_of(list(around))
            bypassed = sum(1 for x in served.values() if x == "bypass")
            print(f"  {ROUNDS} rounds with replay paused: {stored_checks} stored values checked, "
                  f"{len(stale)} stale; the fills read: {sorted(set(dbs.values()))}; "
                  f"{bypassed} reads around the cache; {held} reads found another's lease")
            print(f"  Redis stopped: {len(around)} reads around the cache, "
                  f"{sum(around.values())} older, read on {sorted(set(around_dbs.values()))}")
            self.assertEqual(stale, [])
            self.assertEqual(sum(around.values()), 0, "reads around the cache were older")
            self.assertEqual(set(around_dbs.values()), {"primary"}, "reads around the cache")
            self.assertLess(bypassed, ROUNDS // 4, "the cache was trusted for most rounds")
            self.assertGreater(stored_checks, ROUNDS // 2, "the fills stored values to check")
            self.assertGreater(lag, 1000, "the replica really lagged...")
            self.assertTrue(usable, "...and stayed in use")
        finally:
            restore()
            self.wait_usable()


if __name__ == "__main__":
    unittest.main()
