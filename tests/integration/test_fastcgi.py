"""The FastCGI side on a process's own socket: kept-alive connections are
reused and, while idle, occupy no worker thread; closed ones are cleaned up."""
import os
import re
import select
import threading
import time
import unittest

import fcgi
from fcgi import Connection
from harness import stack


def socket_path(s, i=1):
    return os.path.join(s.dir, "run", f"app-{i}.sock")


def served_connections(s, i=1):
    """Connections the process holds on its socket (the accepted ends:
    /proc/net/unix names them by the listening path, state connected),
    whatever else it has open (Redis, PostgreSQL, files)."""
    path = socket_path(s, i)
    with open("/proc/net/unix") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return sum(1 for r in rows if len(r) >= 8 and r[7] == path and r[5] == "03")


class KeptConnections(unittest.TestCase):
    def test_idle_connections_pin_no_thread(self):
        s = stack()
        restore = s.restart_apps(WORKERS=2)
        conns = []
        try:
            # Three times as many kept connections as threads, all idle.
            for _ in range(6):
                c = Connection(socket_path(s), timeout=5)
                status, _, body = c.request("/healthz")
                self.assertEqual(status, 200, body)
                conns.append(c)
            # A new connection is still served at once ...
            t0 = time.monotonic()
            fresh = Connection(socket_path(s), timeout=5)
            status, _, _ = fresh.request("/healthz")
            self.assertEqual(status, 200)
            self.assertLess(time.monotonic() - t0, 2.0)
            fresh.close()
            # ... and every kept connection serves its next request too.
            for c in reversed(conns):
                status, _, _ = c.request("/readyz")
                self.assertEqual(status, 200)
        finally:
            for c in conns:
                c.close()
            restore()

    def test_connection_without_keep_conn_is_closed_after_the_answer(self):
        s = stack()
        c = Connection(socket_path(s), timeout=5)
        try:
            status, _, _ = c.request("/healthz", keep=False)
            self.assertEqual(status, 200)
            self.assertEqual(c.sock.recv(1), b"")  # the service closed it
        finally:
            c.close()

    def test_closed_kept_connections_leave_no_descriptor(self):
        s = stack()
        before = served_connections(s)
        conns = [Connection(socket_path(s)) for _ in range(40)]
        for c in conns:
            self.assertEqual(c.request("/healthz")[0], 200)
        self.assertGreaterEqual(served_connections(s), before + 40)  # all kept
        for c in conns:
            c.close()
        s.wait_until(lambda: served_connections(s) <= before, timeout=10,
                     what="the service to close the connections its peer closed")

    def test_garbage_on_a_connection_is_dropped_and_others_go_on(self):
        s = stack()
        bad = Connection(socket_path(s), timeout=5)
        try:
            bad.sock.sendall(b"\x07" * 64)  # not a FastCGI record
            bad.sock.settimeout(5)
            self.assertEqual(bad.sock.recv(1), b"")
        finally:
            bad.close()
        good = Connection(socket_path(s), timeout=5)
        try:
            self.assertEqual(good.request("/healthz")[0], 200)
        finally:
            good.close()


REQUEST_TIMEOUT, IDLE_TIMEOUT = 2, 3  # seconds, set for the Timeouts tests


def closed_by_timeout(s, reason, i=1):
    """paintstudio_fastcgi_connections_closed_total{reason} of process i,
    from /metrics on its own socket; None if it has no such series."""
    r = fcgi.request(socket_path(s, i), "GET", "/metrics", extra={"LISTENER_LOCAL": "1"})
    assert r.status == 200, r
    m = re.search(r'^paintstudio_fastcgi_connections_closed_total\{reason="%s"\} (\d+)$' % reason,
                  r.body.decode(), re.M)
    return int(m.group(1)) if m else None


def trickle(sock, data, interval, limit):
    """Send data a byte every interval seconds until the service closes the
    connection or limit seconds pass. Returns (seconds until it was closed,
    what came back), or (None, b"") if it was still open at the limit."""
    t0 = time.monotonic()
    for i in range(len(data)):
        if time.monotonic() - t0 > limit:
            break
        try:
            sock.send(data[i:i + 1])
            if select.select([sock], [], [], interval)[0]:
                return time.monotonic() - t0, sock.recv(65536)
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - t0, b""
    return None, b""


class Timeouts(unittest.TestCase):
    """FCGI_REQUEST_TIMEOUT bounds reading a whole request, however the
    bytes trickle in; FCGI_IDLE_TIMEOUT closes kept connections left idle."""

    @classmethod
    def setUpClass(cls):
        cls.restore = stack().restart_apps(FCGI_REQUEST_TIMEOUT=REQUEST_TIMEOUT,
                                           FCGI_IDLE_TIMEOUT=IDLE_TIMEOUT)

    @classmethod
    def tearDownClass(cls):
        cls.restore()

    def test_trickled_requests_are_closed_at_the_deadline(self):
        """A byte every 0.25 s: far within the 30 s allowed per read, but
        the whole request would take over a minute. Two such peers are cut
        off at the deadline, unanswered, and requests go on meanwhile."""
        s = stack()
        before = closed_by_timeout(s, "request_timeout") or 0
        head = fcgi.request_bytes("/healthz")
        post = fcgi.request_bytes("/auth/login", method="POST",
                                  body=b'{"username":"admin","password":"' + b"x" * 100 + b'"}')
        results = {}

        def run(name, first, rest):
            c = Connection(socket_path(s), timeout=10)
            try:
                c.sock.sendall(first)  # a body's request: all but its last bytes at once
                results[name] = trickle(c.sock, rest, 0.25, REQUEST_TIMEOUT + 6)
            finally:
                c.close()

        threads = [threading.Thread(target=run, args=("parameters", b"", head)),
                   threading.Thread(target=run, args=("body", post[:-60], post[-60:]))]
        for t in threads:
            t.start()
        time.sleep(0.5)
        for _ in range(3):  # served meanwhile, at once
            t0 = time.monotonic()
            self.assertEqual(fcgi.request(socket_path(s), "GET", "/healthz", timeout=5).status, 200)
            self.assertEqual(s.get("/healthz", auth=False).status, 200)
            self.assertLess(time.monotonic() - t0, 2.0)
            time.sleep(0.3)
        for t in threads:
            t.join(REQUEST_TIMEOUT + 10)
        for name in ("parameters", "body"):
            took, answer = results[name]
            self.assertIsNotNone(took, f"{name}: still open {REQUEST_TIMEOUT + 6} s on")
            self.assertGreater(took, REQUEST_TIMEOUT - 0.3, name)
            self.assertLess(took, REQUEST_TIMEOUT + 2.5, name)
            self.assertEqual(answer, b"", f"{name}: closed without an answer")
        self.assertGreaterEqual(closed_by_timeout(s, "request_timeout") or 0, before + 2)
        self.assertIn("request_timeout", s.get("/admin/metrics").json()["fastcgi"]["connections_closed"])
        log = s.logs("app-1.log")[0][1]
        self.assertIn(f"closed the FastCGI connection from unix peer pid {os.getpid()}: its "
                      f"request was not read whole within FCGI_REQUEST_TIMEOUT", log)
        self.assertEqual(fcgi.request(socket_path(s), "GET", "/healthz").status, 200)

    def test_idle_kept_connection_is_closed(self):
        """A kept connection left idle is closed after FCGI_IDLE_TIMEOUT; one
        in use stays open; nginx, whose kept connections are closed the
        same way, opens new ones."""
        s = stack()
        before = closed_by_timeout(s, "idle_timeout") or 0
        idle = Connection(socket_path(s), timeout=10)
        busy = Connection(socket_path(s), timeout=10)
        try:
            self.assertEqual(idle.request("/healthz")[0], 200)
            t0 = time.monotonic()
            closed_at = None
            while closed_at is None and time.monotonic() - t0 < IDLE_TIMEOUT + 5:
                self.assertEqual(busy.request("/healthz")[0], 200)
                if select.select([idle.sock], [], [], 0.5)[0]:
                    closed_at = time.monotonic() - t0
            self.assertIsNotNone(closed_at, f"still open {IDLE_TIMEOUT + 5} s on")
            self.assertEqual(idle.sock.recv(1), b"")
            self.assertGreater(closed_at, IDLE_TIMEOUT - 0.2)  # idle since just before t0
            self.assertLess(closed_at, IDLE_TIMEOUT + 2.5)
            self.assertEqual(busy.request("/healthz")[0], 200)  # used every 0.5 s: kept
        finally:
            idle.close()
            busy.close()
        self.assertGreaterEqual(closed_by_timeout(s, "idle_timeout") or 0, before + 1)
        for _ in range(6):
            self.assertEqual(s.get("/healthz", auth=False).status, 200)
        closed = s.get("/admin/metrics").json()["fastcgi"]["connections_closed"]
        self.assertEqual(set(closed), {"request_timeout", "idle_timeout"})


if __name__ == "__main__":
    unittest.main()


class PassedParameters(unittest.TestCase):
    def test_nginx_passes_every_parameter_the_service_reads(self):
        """nginx/fastcgi.conf passes only named parameters (not every
        request header): each name the service reads with http_param must
        be among them, or the service would silently never see it."""
        import glob
        import re
        from harness import REPO
        read = set()
        for path in glob.glob(os.path.join(REPO, "app", "**", "*.c"), recursive=True):
            with open(path) as f:
                read |= set(re.findall(r'http_param\([^,]+,\s*"([A-Z_]+)"\)', f.read()))
        passed = set()
        for name in ("fastcgi.conf", "locations.conf"):
            with open(os.path.join(REPO, "nginx", name)) as f:
                passed |= set(re.findall(r"^\s*fastcgi_param\s+([A-Z_]+)\s", f.read(), re.M))
        self.assertGreaterEqual(len(read), 10, read)
        self.assertEqual(read - passed, set(), "read by the service but not passed by nginx")
        with open(os.path.join(REPO, "nginx", "fastcgi.conf")) as f:
            self.assertRegex(f.read(), r"(?m)^fastcgi_pass_request_headers off;")
