"""What Redis holds is input, not truth (issue #24).

Hostile values are written straight into the test stack's Redis, under the
keys the service reads (a cached paint, a list page, the stats page, the
page generation), while both service processes trust it. For each one:
both processes stay alive, every answer is what PostgreSQL holds (read
through each process's own FastCGI socket, so both meet the value), no
header carries a CR or LF, the bad value is counted in
paintstudio_cache_bad_values_total, and the normal fill path puts a good
value back (the cache is in use again at once, not bypassed). The log says
so once, not once per request.
"""
import json
import os
import re
import subprocess
import time
import unittest
import uuid

import fcgi
from harness import stack

BAD_VALUE_LOG = "a value read from Redis is not one this service writes"


def redis(*args):
    p = subprocess.run(["redis-cli", "-p", str(stack().redis_port), *args],
                       capture_output=True, text=True, timeout=30)
    return p.stdout.strip()


def redis_raw(*args, data=None):
    """A command whose last argument is data (bytes, sent as they are:
    redis-cli -x reads it from stdin); returns the reply's raw bytes."""
    argv = ["redis-cli", "-p", str(stack().redis_port)] + (["-x"] if data is not None else []) + list(args)
    p = subprocess.run(argv, input=data, capture_output=True, timeout=60)
    return p.stdout


def redis_get(key):
    """The value under key, as bytes (redis-cli --raw adds one newline)."""
    out = subprocess.run(["redis-cli", "-p", str(stack().redis_port), "--raw", "GET", key],
                         capture_output=True, timeout=30).stdout
    return out[:-1] if out.endswith(b"\n") else out


def prefix():
    """The key space the service uses on the Redis now running."""
    info = redis("INFO", "server") + "\n" + redis("INFO", "replication")
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    return "ps:" + fields["run_id"].strip()[:12] + fields["master_replid"].strip()[:12] + ":"


def app_pids():
    out = []
    for i in (1, 2):
        with open(os.path.join(stack().dir, "run", f"app-{i}.pid")) as f:
            out.append(int(f.read()))
    return out


class RedisInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        s = stack()
        s.get("/auth/me")  # logs in
        cls.cookie = s.session[0]
        cls.host = f"127.0.0.1:{s.https_port}"
        cls.socks = [os.path.join(s.dir, "run", f"app-{i}.sock") for i in (1, 2)]
        cls.brand = "input-" + uuid.uuid4().hex[:8]
        cls.paints = []
        for i in range(3):
            r = s.request("POST", "/admin/paints", body={"name": f"input {i}", "brand": cls.brand,
                                                         "stock": i + 1, "price": 4.5})
            assert r.status == 201, r
            cls.paints.append(r.json()["id"])
        cls.list_url = f"/admin/paints?brand={cls.brand}&limit=50"
        cls.pids = app_pids()

    # -- talking to each process ------------------------------------------------
    def fc(self, proc, uri):
        r = fcgi.request(self.socks[proc], "GET", uri, host=self.host,
                         headers={"Cookie": self.cookie})
        self.assert_clean_headers(r)
        return r

    def assert_clean_headers(self, r):
        for k, v in r.headers.items():
            self.assertNotRegex(k + v, r"[\r\n\x00-\x08\x0a-\x1f\x7f]", f"header {k!r}: {v!r}")
        self.assertNotIn("x-injected", r.headers)

    def assert_alive(self):
        for pid in self.pids:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                self.fail(f"service process {pid} is gone:\n{stack().tail_logs(30)}")
        for proc in (0, 1):
            self.assertEqual(self.fc(proc, "/healthz").status, 200)

    def wait_cache_up(self):
        stack().wait_until(lambda: all(json.loads(self.fc(i, "/admin/cache").body)["up"] for i in (0, 1)),
                           timeout=40, what="cache in use on both processes")

    def bad_values(self):
        """paintstudio_cache_bad_values_total summed over both processes
        (None when a process does not have it), checked against
        /admin/metrics' figure."""
        total = 0
        for proc in (0, 1):
            text = self.fc(proc, "/metrics").body.decode()
            m = re.search(r"^paintstudio_cache_bad_values_total (\S+)$", text, re.M)
            if m is None:
                return None
            n = int(float(m.group(1)))
            admin = json.loads(self.fc(proc, "/admin/metrics").body)["cache"].get("bad_values")
            self.assertIsNotNone(admin, "no bad_values in /admin/metrics' cache section")
            self.assertGreaterEqual(admin, n)
            total += n
        return total

    def assert_counted(self, before, what):
        after = self.bad_values()
        self.assertIsNotNone(after, "no paintstudio_cache_bad_values_total in /metrics")
        self.assertGreater(after, before or 0, f"{what} was not counted")
        return after

    # -- the truth ----------------------------------------------------------------
    def paint_row(self, pid):
        out = stack().psql(f"SELECT version, name, stock FROM paints WHERE id = {pid}")
        v, name, stock = out.split("|")
        return int(v), name, int(stock)

    def assert_paint(self, r, pid):
        self.assertEqual(r.status, 200, r)
        version, name, stock = self.paint_row(pid)
        body = r.json()
        self.assertEqual((body["id"], body["version"], body["name"], body["stock"]),
                         (pid, version, name, stock))
        self.assertEqual(r.headers["etag"], f'"v{version}"')

    def assert_list(self, r):
        self.assertEqual(r.status, 200, r)
        want = stack().psql(f"SELECT id, version FROM paints WHERE brand = '{self.brand}' ORDER BY id")
        want = [tuple(map(int, line.split("|"))) for line in want.splitlines()]
        self.assertEqual(sorted((p["id"], p["version"]) for p in r.json()["items"]), want)
        self.assertRegex(r.headers["etag"], r'^"[0-9a-f]{32}"$')

    def assert_stats(self, r):
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["total"], int(stack().psql("SELECT count(*) FROM paints")))
        self.assertRegex(r.headers["etag"], r'^"[0-9a-f]{32}"$')

    # -- cases ----------------------------------------------------------------------
    def prime(self, uri):
        """Read uri through both processes until each answers from Redis."""
        for proc in (0, 1):
            stack().wait_until(lambda: self.fc(proc, uri).headers.get("x-cache") == "hit",
                               timeout=20, what=f"{uri} cached on process {proc + 1}")

    def hostile(self, key, value, uri, check, wrong_type=False):
        """Put value under key (a list instead of a string with wrong_type),
        then read uri through both processes: correct answers, counted, and
        the key holds a good value again (the fill overwrote it)."""
        self.wait_cache_up()
        self.prime(uri)
        before = self.bad_values()
        redis("DEL", key)
        if wrong_type:
            redis("RPUSH", key, "not", "a", "string")
        else:
            redis_raw("SET", key, data=value)
        try:
            self.read_back(key, value, uri, check, before)
        finally:
            redis("DEL", key)  # whatever happened, the next case starts clean

    def read_back(self, key, value, uri, check, before):
        for proc in (0, 1, 0, 1):
            check(self.fc(proc, uri))
        self.assert_alive()
        if not value:
            # An empty string reads as a missing key (a bounded read cannot
            # tell them apart): a plain miss, not counted, filled once the
            # lease the last fill left (3 s) is gone.
            stack().wait_until(lambda: self.fc(0, uri).headers.get("x-cache") == "hit", timeout=10,
                               what="the empty value filled")
        # The fill path puts a good value back. A fill may be refused (its
        # lease or generation overtaken, or the process's trust lapsing for a
        # moment on a loaded machine: stores are refused whenever in doubt),
        # so read until one is stored, within a bound.
        def stored():
            check(self.fc(0, uri))
            return redis("TYPE", key) == "string"
        stack().wait_until(stored, timeout=10, interval=0.3, what="a good value stored over the bad one")
        self.assertTrue(redis_get(key) != value, f"{value[:60]!r} is still there")
        for proc in (0, 1):
            # Both processes read it as a hit (a read in a moment of lapsed
            # trust bypasses Redis, and the next one hits).
            def hit(proc=proc):
                r = self.fc(proc, uri)
                check(r)
                return r.headers.get("x-cache") == "hit"
            stack().wait_until(hit, timeout=10, interval=0.3,
                               what=f"process {proc + 1} to read a hit after {value[:60]!r}")
        check(stack().get(uri))  # and through nginx
        self.assert_alive()
        if value:
            self.assert_counted(before, repr(value[:60]))

    def item_values(self, pid):
        """Hostile entries for the cached paint pid ("<version>\\n<body>")."""
        key = f"{prefix()}paint:{pid}"
        self.prime(f"/admin/paints/{pid}")
        good = redis_get(key)
        version, _, body = good.partition(b"\n")
        other = self.paints[0] if pid != self.paints[0] else self.paints[1]
        self.prime(f"/admin/paints/{other}")
        other_entry = redis_get(f"{prefix()}paint:{other}")
        return [
            b"1\n{not json",                             # invalid JSON
            version + b"\n[1,2,3]",                      # JSON of the wrong shape
            version + b"\n" + body + b" trailing",       # JSON and then some
            other_entry,                                 # another paint's entry
            str(int(version) + 7).encode() + b"\n" + body,  # a version the body does not say
            b"99999999999999999999\n" + body,            # beyond int64
            b"01\n" + body,                              # not how versions are written
            version + b"\n" + body[:len(body) // 2],     # cut short
            version + b'\n{"id":' + str(pid).encode() + b',"name":"' + b"x" * (4 << 20) + b'"}',  # huge
            os.urandom(512) + b"\0\n\0" + os.urandom(512),  # binary garbage
            b"",
            b"-\r\n",                                    # almost "absent"
            version + b"\r\n" + body,                    # a CR in the version
            b"1\r\nX-Injected: yes\n" + body,            # CR/LF: the ETag header
        ]

    def test_hostile_paint_entries(self):
        pid = self.paints[1]
        uri = f"/admin/paints/{pid}"
        for value in self.item_values(pid):
            with self.subTest(value=value[:40]):
                self.hostile(f"{prefix()}paint:{pid}", value, uri, lambda r: self.assert_paint(r, pid))

    def test_a_paint_entry_of_the_wrong_type(self):
        pid = self.paints[2]
        self.hostile(f"{prefix()}paint:{pid}", b"(a list)", f"/admin/paints/{pid}",
                     lambda r: self.assert_paint(r, pid), wrong_type=True)

    def page_key(self, kind, uri, marker):
        """The key of the page uri on the generation now in use."""
        self.prime(uri)
        p = prefix()
        gen = redis("GET", p + "gen") or "0"
        for key in redis("KEYS", f"{p}{kind}:{gen}:*").split():
            if marker is None or marker.encode() in redis_get(key):
                return key
        self.fail(f"no {kind} page for {uri} under generation {gen}")

    def page_values(self, good):
        etag, _, body = good.partition(b"\n")
        return [
            b'W/"abc"\n' + body,                          # not a tag the service writes
            b"\"" + b"a" * 200 + b"\"\n" + body,          # too long
            etag + b"\n{not json",                        # invalid JSON
            etag + b"\n[1,2,3]",                          # the wrong shape
            etag + b'\n{"items":5,"next_cursor":null}',   # the wrong shape inside
            etag + b"\n" + body[:len(body) // 2],         # cut short
            etag + b'\n{"items":[' + b'{"id":1},' * 300000 + b'{"id":1}],"next_cursor":null}',  # huge
            os.urandom(700) + b"\0\n\0" + os.urandom(700),  # binary garbage
            etag,                                          # no body at all
            b"",
            b'"abc"\r\n' + body,                          # a CR ending the ETag
            b'"abc\r\nX-Injected: yes"\n' + body,        # CR/LF in the ETag
        ]

    def test_hostile_list_pages(self):
        key = self.page_key("list", self.list_url, self.brand)
        good = redis_get(key)
        for value in self.page_values(good):
            with self.subTest(value=value[:40]):
                self.hostile(self.page_key("list", self.list_url, self.brand), value, self.list_url,
                             self.assert_list)

    def test_hostile_stats_pages(self):
        good = redis_get(self.page_key("stats", "/admin/paints/stats", None))
        for value in [good.replace(b"total", b"tota1")] + self.page_values(good)[::2]:
            with self.subTest(value=value[:40]):
                self.hostile(self.page_key("stats", "/admin/paints/stats", None), value,
                             "/admin/paints/stats", self.assert_stats)

    def test_a_page_of_the_wrong_type(self):
        self.hostile(self.page_key("list", self.list_url, self.brand), b"(a hash)", self.list_url,
                     self.assert_list, wrong_type=True)

    def test_hostile_generations(self):
        """A generation that is not a bounded decimal: pages are read from
        PostgreSQL (nothing cached under it), counted; once a good one is
        back, the cache is in use again."""
        for value in [b"12\r\nX-Injected: yes", b"abc", b"-5", b"1e3", b"9" * 40, os.urandom(20)]:
            with self.subTest(value=value):
                self.wait_cache_up()
                self.prime(self.list_url)
                p = prefix()
                old = int(redis("GET", p + "gen") or "0")
                before = self.bad_values()
                redis_raw("SET", p + "gen", data=value)
                try:
                    deadline = time.monotonic() + 3
                    while time.monotonic() < deadline:
                        for proc in (0, 1):
                            self.assert_list(self.fc(proc, self.list_url))
                            self.assert_stats(self.fc(proc, "/admin/paints/stats"))
                    self.assert_alive()
                    self.assert_counted(before, repr(value))
                finally:
                    # a value above any generation handed out before keeps pages honest
                    redis("SET", p + "gen", str(old + 1000))
                self.wait_cache_up()
                self.prime(self.list_url)
                self.assert_list(self.fc(0, self.list_url))

    def test_repeated_bad_values_are_logged_once(self):
        """Bad values met again and again (each put back after the fill
        replaced the last) are each counted; the log says so at most once
        per process."""
        pid = self.paints[0]
        key = f"{prefix()}paint:{pid}"
        self.wait_cache_up()
        self.prime(f"/admin/paints/{pid}")
        lines = [text.count(BAD_VALUE_LOG) for _, text in stack().logs("app-*.log")]
        before = self.bad_values()
        for i in range(20):
            redis_raw("SET", key, data=b"1\n{not json")
            self.assert_paint(self.fc(i % 2, f"/admin/paints/{pid}"), pid)
        redis("DEL", key)
        self.assert_alive()
        self.assertGreaterEqual(self.assert_counted(before, "the same bad value") - (before or 0), 20)
        after = [text.count(BAD_VALUE_LOG) for _, text in stack().logs("app-*.log")]
        self.assertGreaterEqual(sum(after), 1, "no log line about bad values")
        for n0, n1 in zip(lines, after):
            self.assertLessEqual(n1 - n0, 1, "bad values logged per request")

if __name__ == "__main__":
    unittest.main()
