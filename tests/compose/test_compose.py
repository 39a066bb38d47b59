"""docker-compose.yml for real: the stack up with three app replicas behind
compose's nginx (published on a free loopback port), then, in order:
readiness, login, CRUD, a write through one replica read back through the
others, one replica killed under steady reads, the db container restarted,
and scaling 3 -> 1 -> 3 under reads without restarting nginx; last, the
optional read replica (--profile replica) made from db and used by the
service, and Prometheus (--profile monitoring) scraping every replica and
firing the database alert when db stops."""
import json
import os
import re
import threading
import time
import unittest
import urllib.request
import uuid

from composer import (ADMIN_PASSWORD, REPO, Project, container_logs, docker, fastcgi,
                      free_port, wait_until)

P = None


def setUpModule():
    global P
    P = Project("paintstudio-compose-test", os.path.join(REPO, "docker-compose.yml"), {
        "POSTGRES_PASSWORD": "pw-" + uuid.uuid4().hex,
        "REDIS_PASSWORD": uuid.uuid4().hex,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "HTTPS_BIND": "127.0.0.1",
        "HTTPS_PORT": str(free_port()),
        "WORKERS": "8",
        "DB_POOL_SIZE": "3",
        "LOG_LEVEL": "info",
        # The suite speaks FastCGI to each replica from this machine (to know
        # which one answers), through the project's bridge, whose address is
        # not known before `up`: let every peer in ("*"; empty would be
        # the default, nginx and loopback). test_security checks the
        # restriction itself with real TCP peers.
        "FCGI_WEB_SERVER_ADDRS": "*",
        # the monitoring profile's Prometheus scrapes every replica with it
        "METRICS_TOKEN": uuid.uuid4().hex + uuid.uuid4().hex,
        "PROMETHEUS_PORT": str(free_port()),
    }, port_var="HTTPS_PORT")
    P.down()  # what an interrupted run may have left
    t0 = time.monotonic()
    try:
        P.compose("up", "-d", "--no-build", "--scale", "app=3", timeout=600)
        wait_until(lambda: P.get("/readyz", auth=False, insecure=True).status == 200,
                   timeout=90, what="/readyz through compose's nginx")
        P.trust_nginx_certificate()
    except Exception:
        print(P.logs(tail=40))
        P.down()
        raise
    print(f"compose: up (3 app replicas) in {time.monotonic() - t0:.1f}s", flush=True)
    P.t_suite = time.monotonic()


def tearDownModule():
    if P is not None:
        P.finish("compose")


def new_paint(**fields):
    body = {"name": "Compose " + uuid.uuid4().hex[:10], "brand": "ComposeBrand",
            "color_type": "Acrylic", "stock": 3, "price": 4.5}
    body.update(fields)
    r = P.request("POST", "/admin/paints", body=body)
    assert r.status == 201, r
    return r.json()


def fcgi_session():
    """A session for FastCGI requests straight to replicas (as if through
    nginx for Host "localhost")."""
    cookie, csrf, r = P.login()
    assert cookie, r
    return {"Cookie": cookie}, {"Cookie": cookie, "X-CSRF-Token": csrf,
                                "Origin": "https://localhost"}


class Reader:
    """Steady reads through nginx from a few threads until stopped: every
    answer is recorded as (time, status, Retry-After, X-Request-Id)."""

    # At most 20 requests a second in all: nginx limits /admin/ to 20 a
    # second per client address (burst 100), and here every request comes
    # from this machine through the published port.
    def __init__(self, paths, threads=3, pause=0.15):
        self.paths = paths
        self.results = []
        self.errors = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]
        self.pause = pause

    def run(self, i):
        n = 0
        while not self.stopping.is_set():
            path = self.paths[(i + n) % len(self.paths)]
            n += 1
            try:
                r = P.get(path, timeout=30)
                self.results.append((time.monotonic(), r.status, r.headers.get("retry-after"),
                                     r.headers.get("x-request-id")))
            except Exception as e:  # a refused or reset connection is a failure
                self.errors.append(repr(e))
            time.sleep(self.pause)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=60)

    def bad(self):
        """Answers that are neither 2xx nor 503 with Retry-After."""
        return [r for r in self.results
                if not (200 <= r[1] < 300 or (r[1] == 503 and r[2]))]

    def since(self, t):
        return [r for r in self.results if r[0] >= t]


# The keys app/cache/cache.c writes with no TTL (the never-stale argument's
# generation and WAL position); every other key must have one.
CORRECTNESS_KEY = re.compile(r"^ps:[0-9a-f]{24}:(gen|wal)$")
NO_TTL_KEYS = ("local r = {} for _, k in ipairs(redis.call('KEYS', '*')) do "
               "if redis.call('TTL', k) == -1 then table.insert(r, k) end end return r")


class Hardening(unittest.TestCase):
    """Issue 24: Redis with a password and bounds, nginx not root."""

    def redis_cli(self, *args, auth=True):
        pre = () if auth else ("env", "-u", "REDISCLI_AUTH")
        return P.compose("exec", "-T", "redis", *pre, "redis-cli", *args, timeout=60,
                         check=False).strip()

    def test_redis_needs_its_password_and_evicts_only_keys_with_a_ttl(self):
        self.assertIn("NOAUTH", self.redis_cli("PING", auth=False))
        self.assertEqual(self.redis_cli("CONFIG", "GET", "maxmemory-policy").split(),
                         ["maxmemory-policy", "volatile-lru"])
        self.assertGreater(int(self.redis_cli("CONFIG", "GET", "maxmemory").split()[1]), 0)
        # the service reaches it with the password from .env
        wait_until(lambda: "paintstudio_redis_up 1" in P.get("/metrics").body.decode(),
                   timeout=30, what="the cache in use")
        p = new_paint()
        P.get(f"/admin/paints/{p['id']}")
        P.get("/admin/paints?limit=5")
        self.assertTrue(any(k.endswith(f":paint:{p['id']}")
                            for k in self.redis_cli("KEYS", "*").split()))
        no_ttl = self.redis_cli("EVAL", NO_TTL_KEYS, "0").split()
        self.assertTrue(no_ttl)
        self.assertEqual([k for k in no_ttl if not CORRECTNESS_KEY.match(k)], [])

    def test_nginx_runs_as_an_unprivileged_user(self):
        nginx = P.containers("nginx")[0][0]
        self.assertNotIn(docker("inspect", "-f", "{{.Config.User}}", nginx).strip(),
                         ("", "root", "0"))
        procs = docker("top", nginx, "-eo", "pid,uid,args").splitlines()[1:]
        self.assertTrue(any("nginx: worker" in line for line in procs), procs)
        self.assertEqual([line for line in procs if line.split()[1] == "0"], [], procs)


class Stack(unittest.TestCase):
    """In order (the names sort): each step leaves three healthy replicas."""

    def replicas(self, n=3):
        return wait_until(lambda: (lambda c: c if len(c) == n else None)(P.containers("app")),
                          timeout=60, what=f"{n} app replicas")

    def assert_replicas_ready(self, replicas):
        for name, ip in replicas:
            r = wait_until(lambda: fastcgi((ip, 9000), "GET", "/readyz").status == 200,
                           timeout=30, what=f"{name} ready")
            self.assertTrue(r)

    def test_1_ready_login_and_crud_through_nginx(self):
        self.assert_replicas_ready(self.replicas(3))
        self.assertEqual(P.get("/healthz", auth=False).status, 200)
        r = P.get("/readyz", auth=False)
        self.assertEqual(r.status, 200, r)
        # the admin UI from the image
        r = P.get("/", auth=False)
        self.assertEqual(r.status, 200)
        self.assertIn(b"<html", r.body.lower())
        # login: a wrong password is refused, the right one gives a session
        self.assertEqual(P.login(password="wrong password")[2].status, 401)
        cookie, csrf, r = P.login()
        self.assertIsNotNone(cookie, r)
        self.assertEqual(P.get("/auth/me").json()["user"]["username"], "admin")
        # CRUD
        p = new_paint(name="Compose CRUD")
        url = f"/admin/paints/{p['id']}"
        self.assertEqual(P.get(url).json()["name"], "Compose CRUD")
        r = P.request("PATCH", url, body={"stock": 9}, headers={"If-Match": '"v1"'})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["stock"], 9)
        r = P.request("PUT", url, body={"name": "Compose CRUD 2", "brand": "B"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(P.get(url).json()["name"], "Compose CRUD 2")
        lst = P.get("/admin/paints?q=Compose%20CRUD%202").json()
        self.assertIn(p["id"], [x["id"] for x in lst["items"]], lst)
        self.assertEqual(P.request("DELETE", url).status, 204)
        self.assertEqual(P.get(url).status, 404)
        self.assertEqual(P.psql(f"SELECT count(*) FROM paints WHERE id = {p['id']}"), "0")
        # query analytics: pg_stat_statements preloaded by db's command, installed by migrate
        q = P.get("/admin/queries?limit=200").json()
        self.assertTrue(q["available"], q)
        self.assertIn("paint_insert", [x["name"] for x in q["items"]])

    def test_2_write_through_one_replica_read_back_through_the_others(self):
        replicas = self.replicas(3)
        read, write = fcgi_session()
        p = new_paint(stock=1)
        url = f"/admin/paints/{p['id']}"
        # every replica reads it (and caches it)
        for name, ip in replicas:
            r = fastcgi((ip, 9000), "GET", url, headers=read)
            self.assertEqual((r.status, r.json()["stock"]), (200, 1), name)
        for i, (name, ip) in enumerate(replicas):
            stock = 100 + i
            r = fastcgi((ip, 9000), "PATCH", url, body={"stock": stock}, headers=write)
            self.assertEqual(r.status, 200, f"{name}: {r}")
            for other, oip in replicas:
                got = fastcgi((oip, 9000), "GET", url, headers=read)
                self.assertEqual(got.status, 200, other)
                self.assertEqual(got.json()["stock"], stock,
                                 f"written through {name}, read through {other}")
        # and nginx's answer agrees
        self.assertEqual(P.get(url).json()["stock"], 102)

    def test_3_one_replica_killed_under_steady_reads(self):
        replicas = self.replicas(3)
        ids = [new_paint()["id"] for _ in range(4)]
        paths = [f"/admin/paints/{i}" for i in ids] + ["/readyz", "/admin/paints?limit=5"]
        victim, survivors = replicas[0], replicas[1:]
        # back to three afterwards, whatever happens here
        self.addCleanup(lambda: P.compose("up", "-d", "--no-deps", "--no-build", "--scale",
                                          "app=3", "app", timeout=300))
        with Reader(paths) as reads:
            time.sleep(2)
            docker("kill", victim[0])  # SIGKILL, no drain
            t_kill = time.monotonic()
            time.sleep(6)
        self.assertEqual(reads.errors, [])
        self.assertGreater(len(reads.since(t_kill)), 50, "reads stopped after the kill")
        self.assertEqual(reads.bad(), [])
        # the others carry on: everything a few seconds after the kill is 2xx
        late = reads.since(t_kill + 3)
        self.assertTrue(late and all(200 <= r[1] < 300 for r in late), late[:20])
        read, _ = fcgi_session()
        for name, ip in survivors:
            self.assertEqual(fastcgi((ip, 9000), "GET", paths[0], headers=read).status, 200, name)
        # back to three
        P.compose("up", "-d", "--no-deps", "--no-build", "--scale", "app=3", "app", timeout=300)
        self.assert_replicas_ready(self.replicas(3))

    def test_4_db_restart_recovers_by_itself(self):
        replicas = self.replicas(3)
        started = {n: docker("inspect", "-f", "{{.State.StartedAt}}", n).strip() for n, _ in replicas}
        p = new_paint(stock=5)
        url = f"/admin/paints/{p['id']}"
        t0 = time.monotonic()
        P.compose("restart", "db", timeout=120)
        # no hand on the service: it finds the database again
        wait_until(lambda: P.get("/readyz", auth=False).status == 200, timeout=60,
                   what="/readyz after the db restart")
        wait_until(lambda: P.request("PATCH", url, body={"stock": 6}).status == 200, timeout=60,
                   what="a write after the db restart")
        print(f"compose: db restart, service recovered in {time.monotonic() - t0:.1f}s", flush=True)
        self.assertEqual(P.psql(f"SELECT stock FROM paints WHERE id = {p['id']}"), "6")
        read, _ = fcgi_session()
        for name, ip in replicas:
            r = wait_until(lambda: (lambda r: r if r.status == 200 else None)(
                fastcgi((ip, 9000), "GET", url, headers=read)), timeout=30, what=f"{name} reads")
            self.assertEqual(r.json()["stock"], 6, name)
            self.assertEqual(docker("inspect", "-f", "{{.State.StartedAt}}", name).strip(),
                             started[name], f"{name} was restarted")

    def test_5_scale_3_1_3_under_reads_without_restarting_nginx(self):
        self.replicas(3)
        nginx = P.containers("nginx")[0][0]
        nginx_started = docker("inspect", "-f", "{{.State.StartedAt}}", nginx).strip()
        ids = [new_paint()["id"] for _ in range(3)]
        paths = [f"/admin/paints/{i}" for i in ids] + ["/readyz"]
        with Reader(paths) as reads:
            time.sleep(1)
            P.compose("up", "-d", "--no-deps", "--no-build", "--scale", "app=1", "app", timeout=300)
            self.replicas(1)
            one = P.ids("app")
            t_one = time.monotonic()
            time.sleep(2)
            P.compose("up", "-d", "--no-deps", "--no-build", "--scale", "app=3", "app", timeout=300)
            three = self.replicas(3)
            self.assert_replicas_ready(three)
            t_three = time.monotonic()
            time.sleep(4)
        self.assertEqual(reads.errors, [])
        self.assertEqual(reads.bad(), [])
        self.assertTrue(reads.since(t_one) and reads.since(t_three), "reads stopped")
        self.assertEqual(docker("inspect", "-f", "{{.State.StartedAt}}", nginx).strip(),
                         nginx_started, "nginx was restarted")
        # the new replicas get requests through the same nginx
        new = P.ids("app") - one
        self.assertEqual(len(new), 2, three)
        rids = [P.get("/readyz", auth=False).headers.get("x-request-id") for _ in range(40)]
        for cid in new:
            log = container_logs(cid)
            served = [rid for rid in rids if rid and rid in log]
            self.assertTrue(served, f"new replica {cid[:12]} served none of 40 requests "
                            "through nginx")

    def test_6_replica_profile(self):
        """--profile replica: db-replica copies db (pg_basebackup), streams
        from it, and the service reads from it once DATABASE_REPLICA_URLS
        names it."""
        rm = ("--profile", "replica", "rm", "-s", "-f", "-v", "db-replica")
        self.addCleanup(lambda: P.compose(*rm, timeout=120, check=False))
        t0 = time.monotonic()
        P.compose("--profile", "replica", "up", "-d", "--no-deps", "--no-build", "db-replica",
                  timeout=300)
        rep = lambda sql: P.compose("exec", "-T", "db-replica", "psql", "-U", "paintstudio", "-d",
                                    "paintstudio", "-qAtX", "-c", sql, timeout=60, check=False).strip()
        wait_until(lambda: rep("SELECT pg_is_in_recovery()") == "t", timeout=120,
                   what="db-replica up as a standby")
        paint = new_paint(name="streamed")
        wait_until(lambda: rep(f"SELECT count(*) FROM paints WHERE id = {paint['id']}") == "1",
                   timeout=30, what="the new paint replayed on db-replica")
        print(f"compose: db-replica streaming in {time.monotonic() - t0:.1f}s", flush=True)
        P.env["DATABASE_REPLICA_URLS"] = (
            f"postgresql://paintstudio:{P.env['POSTGRES_PASSWORD']}@db-replica:5432/paintstudio"
            "?sslmode=disable")
        try:
            P.compose("up", "-d", "--no-deps", "--no-build", "--scale", "app=3", "app", timeout=300)
            wait_until(lambda: P.get("/readyz", auth=False).status == 200, timeout=60,
                       what="/readyz after the restart")
            # a write records its position for cache fills (none is known before
            # the first write with replicas on); the replica is sampled past it
            new_paint(name="after replicas on")
            time.sleep(2.5)

            def used():
                for _ in range(12):
                    P.get(f"/admin/paints?limit=5&q=x{uuid.uuid4().hex[:6]}")
                pool = P.get("/admin/pool").json()
                return pool.get("replicas") and pool["replicas"][0]["usable"] and \
                    pool["replicas"][0]["reads"] > 0 and pool
            pool = wait_until(used, timeout=60, what="reads served by db-replica")
            self.assertEqual(pool["replicas"][0]["name"], "replica1")
        finally:
            del P.env["DATABASE_REPLICA_URLS"]
            P.compose("up", "-d", "--no-deps", "--no-build", "--scale", "app=3", "app", timeout=300)

    def test_7_monitoring_profile(self):
        """--profile monitoring: Prometheus, built from Debian's package,
        finds every replica through Docker's DNS and scrapes each through
        nginx's internal listener with METRICS_TOKEN, loads the rules of
        monitoring/rules, and fires the database alert within its `for:`
        once db stops."""
        prof = ("--profile", "monitoring")
        self.addCleanup(lambda: P.compose(*prof, "rm", "-s", "-f", "-v", "prometheus",
                                          timeout=120, check=False))
        t0 = time.monotonic()
        # its image is made with the project's (scripts/docker-images.sh)
        P.compose(*prof, "up", "-d", "--no-deps", "--no-build", "prometheus", timeout=300)
        base = f"http://127.0.0.1:{P.env['PROMETHEUS_PORT']}/api/v1/"

        def api(path):
            with urllib.request.urlopen(base + path, timeout=10) as r:
                return json.load(r)["data"]

        replicas = self.replicas(3)

        def all_up():
            try:
                targets = api("targets?state=active")["activeTargets"]
            except OSError:
                return None  # not listening yet
            up = sorted(t["labels"]["instance"] for t in targets
                        if t["labels"]["job"] == "paintstudio" and t["health"] == "up")
            return up if len(up) == 3 else None
        up = wait_until(all_up, timeout=120, what="the 3 replicas up as Prometheus targets")
        self.assertEqual(up, sorted(f"{ip}:9000" for _, ip in replicas))
        print(f"compose: prometheus scraping 3 replicas {time.monotonic() - t0:.1f}s after it started",
              flush=True)

        def rule():
            rules = [r for g in api("rules")["groups"] for r in g["rules"]
                     if r["name"] == "PaintstudioDatabaseDown"]
            self.assertEqual(len(rules), 1, "the rules of monitoring/rules are loaded")
            return rules[0]
        hold = rule()["duration"]
        self.assertGreater(hold, 0)
        wait_until(lambda: rule()["health"] == "ok", timeout=30, what="the rule evaluated")
        self.assertEqual(rule()["state"], "inactive")
        try:
            P.compose("stop", "db", timeout=120)
            stopped = time.monotonic()

            def firing():
                return [a for a in api("alerts")["alerts"]
                        if a["labels"]["alertname"] == "PaintstudioDatabaseDown" and a["state"] == "firing"]
            wait_until(firing, timeout=hold + 90, interval=1, what="PaintstudioDatabaseDown firing")
            took = time.monotonic() - stopped
            print(f"compose: db stopped, PaintstudioDatabaseDown fired after {took:.0f}s "
                  f"(for: {hold:.0f}s)", flush=True)
            self.assertGreaterEqual(took, hold - 1, "fired before its for:")
            # scrape (5 s), the probe (2 s), evaluation (5 s): within its for: and a round of each
            self.assertLessEqual(took, hold + 20)
        finally:
            P.compose("start", "db", timeout=120)
            wait_until(lambda: P.get("/readyz", auth=False).status == 200, timeout=90,
                       what="/readyz after db is back")


if __name__ == "__main__":
    unittest.main()
