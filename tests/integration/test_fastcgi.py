"""The FastCGI side on a process's own socket: kept-alive connections are
reused and, while idle, occupy no worker thread; closed ones are cleaned up."""
import os
import time
import unittest

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
        for path in glob.glob(os.path.join(REPO, "app", "*.c")):
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
