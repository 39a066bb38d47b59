"""Hostile input through nginx: every answer is a 4xx or a closed
connection, never a crash, a 5xx other than 503, or a stuck worker."""
import socket
import ssl
import threading
import time
import unittest

from harness import stack


def raw(request: bytes, timeout=15):
    """Send bytes over TLS as they are; return the status code (0: closed)."""
    s = stack()
    ctx = ssl.create_default_context(cafile=f"{s.dir}/tls/cert.pem")
    ctx.set_alpn_protocols(["http/1.1"])
    with socket.create_connection(("127.0.0.1", s.https_port), timeout=timeout) as sock:
        with ctx.wrap_socket(sock, server_hostname="localhost") as t:
            t.sendall(request)
            data = b""
            try:
                while b"\r\n" not in data:
                    chunk = t.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except (ConnectionResetError, ssl.SSLError, socket.timeout):
                return 0
    if not data.startswith(b"HTTP/1.1 "):
        return 0
    return int(data.split()[1])


def acceptable(status):
    return status == 0 or 400 <= status < 500 or status == 503


class Hostile(unittest.TestCase):
    def headers(self):
        if stack().session is None:
            stack().get("/auth/me")  # logs the admin in
        cookie, csrf = stack().session
        port = stack().https_port
        return (f"Host: 127.0.0.1:{port}\r\nCookie: {cookie}\r\nOrigin: https://127.0.0.1:{port}\r\n"
                f"X-CSRF-Token: {csrf}\r\n").encode()

    def post(self, path, body, ctype=b"application/json", method=b"POST"):
        return raw(method + b" " + path + b" HTTP/1.1\r\n" + self.headers() + b"Content-Type: " + ctype +
                   b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)

    def test_malformed_requests(self):
        h = self.headers()
        cases = {
            "huge header": b"GET /admin/paints/1 HTTP/1.1\r\n" + h + b"X-Big: " + b"a" * 40000 + b"\r\n\r\n",
            "many headers": b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 5000 + b"\r\n",
            "NUL in path": b"GET /admin/paints/1%00 HTTP/1.1\r\n" + h + b"Connection: close\r\n\r\n",
            "raw NUL in path": b"GET /admin/\x00paints HTTP/1.1\r\n" + h + b"Connection: close\r\n\r\n",
            "bad UTF-8 path": b"GET /admin/paints/%ff%fe HTTP/1.1\r\n" + h + b"Connection: close\r\n\r\n",
            "bad UTF-8 query": b"GET /admin/paints?q=%c3%28 HTTP/1.1\r\n" + h + b"Connection: close\r\n\r\n",
            "garbage line": b"\x16\x03\x01 nonsense\r\n\r\n",
            "bad method": b"BREW /admin/paints HTTP/1.1\r\n" + h + b"Connection: close\r\n\r\n",
            "lying length": b"POST /admin/paints HTTP/1.1\r\n" + h +
                            b"Content-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{}",
            "huge length": b"POST /admin/paints HTTP/1.1\r\n" + h +
                           b"Content-Type: application/json\r\nContent-Length: 99999999999\r\nConnection: close\r\n\r\n",
            "negative length": b"POST /admin/paints HTTP/1.1\r\n" + h +
                               b"Content-Type: application/json\r\nContent-Length: -5\r\nConnection: close\r\n\r\n",
        }
        for name, req in cases.items():
            with self.subTest(case=name):
                st = raw(req, timeout=20)
                self.assertTrue(acceptable(st), f"{name}: {st}")
        self.assertEqual(stack().get("/readyz").status, 200)

    def test_hostile_bodies(self):
        bodies = {
            "invalid UTF-8": b'{"name": "\xc3\x28"}',
            "NUL byte": b'{"name": "a\x00b"}',
            "deep nesting": b'{"name":' + b"[" * 5000 + b"]" * 5000 + b"}",
            "huge number": b'{"name": "x", "stock": 1' + b"0" * 5000 + b"}",
            "huge exponent": b'{"name": "x", "price": 1e999999}',
            "huge string": b'{"name": "' + b"x" * 60000 + b'"}',
            "duplicate keys": b'{"name": "a", "name": "b", "stock": -1}',
            "not json": b"<xml/>",
            "over the limit": b'{"description": "' + b"d" * 70000 + b'"}',
        }
        before = stack().psql("SELECT count(*) FROM paints")
        for name, body in bodies.items():
            with self.subTest(body=name):
                st = self.post(b"/admin/paints", body)
                self.assertTrue(acceptable(st), f"{name}: {st}")
                self.assertNotEqual(st, 0, "the service should answer, not drop, a bad body")
        self.assertEqual(stack().psql("SELECT count(*) FROM paints"), before)

    def test_slow_clients_do_not_hold_workers(self):
        """Twenty slowloris connections dribble headers for ~6 s while normal
        requests keep being served promptly (nginx buffers requests, so a
        slow client never reaches a service thread)."""
        s = stack()
        stop = threading.Event()
        ctx = ssl.create_default_context(cafile=f"{s.dir}/tls/cert.pem")

        def slow():
            try:
                with socket.create_connection(("127.0.0.1", s.https_port), timeout=30) as sock:
                    with ctx.wrap_socket(sock, server_hostname="localhost") as t:
                        t.sendall(b"POST /admin/paints HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
                        for _ in range(12):
                            if stop.is_set():
                                break
                            t.sendall(b"x")
                            time.sleep(0.5)
            except OSError:
                pass

        threads = [threading.Thread(target=slow) for _ in range(20)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            for _ in range(20):
                t0 = time.monotonic()
                self.assertEqual(s.get("/admin/paints/1").status, 200)
                self.assertLess(time.monotonic() - t0, 5)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        # no service thread is left busy by the slow clients
        from test_observability import scrape_all
        s.wait_until(lambda: all(samples[("paintstudio_threads_busy", ())] <= 1
                                 for samples in scrape_all(s).values()),
                     timeout=10, what="idle workers")


if __name__ == "__main__":
    unittest.main()
