"""The production profile in a container, the way Railway runs the image
(tests/compose/railway.yml): RAILWAY_ENVIRONMENT and PORT set,
scripts/railway-entrypoint.sh, PostgreSQL with TLS so that the profile's
sslmode=require is exercised. Readiness, a login, and SIGTERM draining a
request in flight."""
import os
import threading
import time
import unittest
import uuid

from composer import (ADMIN_PASSWORD, HERE, Project, container_logs, docker, free_port,
                      wait_until)
from harness import HeldLock

P = None


def setUpModule():
    global P
    P = Project("paintstudio-railway-test", os.path.join(HERE, "railway.yml"), {
        "POSTGRES_PASSWORD": "pw-" + uuid.uuid4().hex,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PUBLISHED_PORT": str(free_port()),
    }, port_var="PUBLISHED_PORT", https=False)
    P.down()
    t0 = time.monotonic()
    try:
        P.compose("up", "-d", "--no-build", timeout=600)
        wait_until(lambda: P.get("/readyz", auth=False).status == 200, timeout=90,
                   what="/readyz on $PORT")
    except Exception:
        print(P.logs(tail=40))
        P.down()
        raise
    print(f"railway: up in {time.monotonic() - t0:.1f}s", flush=True)


def tearDownModule():
    if P is None:
        return
    t0 = time.monotonic()
    P.down()
    print(f"railway: down in {time.monotonic() - t0:.1f}s", flush=True)


class Production(unittest.TestCase):
    """In order: the last test stops the container."""

    def test_1_ready_with_tls_to_postgresql(self):
        self.assertEqual(P.get("/healthz", auth=False).status, 200)
        self.assertEqual(P.get("/readyz", auth=False).status, 200)
        env = docker("exec", P.containers("app")[0][0], "env")
        self.assertIn("RAILWAY_ENVIRONMENT=production", env)
        self.assertNotIn("sslmode", env)  # the profile chooses it
        # every connection the service holds is encrypted
        rows = P.psql("SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                      "WHERE a.application_name LIKE 'paint\\_studio%'")
        self.assertTrue(rows, "the service holds no connection")
        self.assertEqual(set(rows.split()), {"t"}, rows)

    def test_2_login(self):
        self.assertEqual(P.login(password="not the password")[2].status, 401)
        cookie, csrf, r = P.login()
        self.assertIsNotNone(cookie, r)
        self.assertIn("Secure", r.headers["set-cookie"])  # production: cookies only over TLS
        self.assertEqual(P.get("/auth/me").json()["user"]["username"], "admin")
        r = P.request("POST", "/admin/paints", body={"name": "Railway " + uuid.uuid4().hex[:8]})
        self.assertEqual(r.status, 201, r)

    def test_3_sigterm_drains_a_request_in_flight(self):
        P.get("/auth/me")  # a session before the lock
        name = P.containers("app")[0][0]
        lock = HeldLock(P.argv("exec", "-T", "db", "psql", "-U", "paintstudio", "-d", "paintstudio",
                               "-qAtX"), env=P.env)
        result = {}

        def slow():  # a unique query: never answered from the cache
            try:
                result["r"] = P.get(f"/admin/paints?limit=1&q=drain-{uuid.uuid4().hex}",
                                    timeout=60)
            except Exception as e:
                result["r"] = e
        t = threading.Thread(target=slow)
        t.start()
        try:
            wait_until(lambda: int(P.psql(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND application_name LIKE 'paint\\_studio%'")) >= 1,
                timeout=15, what="the request to wait on the lock")
            docker("kill", "-s", "TERM", name)
            time.sleep(0.7)
            self.assertEqual(docker("inspect", "-f", "{{.State.Running}}", name).strip(), "true",
                             "the container stopped before its request finished")
        finally:
            lock.release()
        t.join(timeout=60)
        self.assertEqual(getattr(result.get("r"), "status", result.get("r")), 200)
        self.assertEqual(docker("wait", name, timeout=60).strip(), "0")
        self.assertIn("drained in", container_logs(name))


if __name__ == "__main__":
    unittest.main()
