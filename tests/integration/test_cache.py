"""Redis as the shared cache, through nginx with two service processes:
hits need no database, writes are visible at once on every process, no
stampede, and Redis failing or restarting never serves stale data."""
import os
import signal
import subprocess
import threading
import time
import unittest

from harness import stack


def redis(*args):
    p = subprocess.run(["redis-cli", "-p", str(stack().redis_port), *args],
                       capture_output=True, text=True, timeout=30)
    return p.stdout.strip()


def prefix():
    """The key space the service uses on the Redis now running: "ps:" and
    the first 12 characters of its run_id and of its replication id."""
    info = redis("INFO", "server") + "\n" + redis("INFO", "replication")
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    return "ps:" + fields["run_id"].strip()[:12] + fields["master_replid"].strip()[:12] + ":"


def paint_get_calls():
    """How often PostgreSQL ran the single-paint read (pg_stat_statements)."""
    out = stack().psql("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                       "WHERE query LIKE '%SELECT id, name, brand%WHERE id = $1'", admin=True)
    return int(out)


def new_paint(**kw):
    body = {"name": "Cache test", "stock": 1}
    body.update(kw)
    r = stack().request("POST", "/admin/paints", body=body)
    assert r.status == 201, r
    return r.json()


class CacheAside(unittest.TestCase):
    def test_miss_then_hit_without_the_database(self):
        p = new_paint()
        url = f"/admin/paints/{p['id']}"
        first = stack().get(url)
        self.assertEqual(first.headers["x-cache"], "miss")
        calls = paint_get_calls()
        for _ in range(6):  # both processes
            r = stack().get(url)
            self.assertEqual(r.headers["x-cache"], "hit")
            self.assertEqual(r.body, first.body)
            self.assertEqual(r.headers["etag"], first.headers["etag"])
        self.assertEqual(paint_get_calls(), calls)
        self.assertEqual(stack().get(url, headers={"If-None-Match": first.headers["etag"]}).status, 304)
        self.assertTrue(redis("GET", f"{prefix()}paint:{p['id']}").startswith("1\n{"))

    def test_absent_paint_is_cached_as_absent(self):
        url = "/admin/paints/8999999999"
        stack().get(url)
        calls = paint_get_calls()
        for _ in range(6):
            r = stack().get(url)
            self.assertEqual(r.status, 404)
            self.assertEqual(r.headers["x-cache"], "hit")
        self.assertEqual(paint_get_calls(), calls)

    def test_create_clears_a_cached_absence(self):
        nxt = int(stack().psql("SELECT last_value + 1 FROM paints_id_seq"))
        self.assertEqual(stack().get(f"/admin/paints/{nxt}").status, 404)  # cached absent
        p = new_paint()
        self.assertEqual(p["id"], nxt)
        self.assertEqual(stack().get(f"/admin/paints/{nxt}").status, 200)

    def test_every_write_is_visible_on_the_next_read_on_every_process(self):
        p = new_paint(stock=0)
        url = f"/admin/paints/{p['id']}"
        for i in range(1, 41):
            if i % 4 == 0:
                w = stack().request("POST", url + "/stock", body={"delta": 1})
                expect = w.json()["stock"]
            elif i % 4 == 1:
                w = stack().request("PUT", url, body={"name": f"Put {i}", "stock": i})
                expect = i
            else:
                w = stack().request("PATCH", url, body={"stock": i})
                expect = i
            self.assertEqual(w.status, 200, w)
            for _ in range(2):  # nginx alternates: both processes read it
                self.assertEqual(stack().get(url).json()["stock"], expect)
        self.assertEqual(stack().request("DELETE", url).status, 204)
        for _ in range(4):
            self.assertEqual(stack().get(url).status, 404)

    def test_lists_and_stats_are_cached_and_invalidated(self):
        url = "/admin/paints?brand=Holbein&limit=10"
        a = stack().get(url)
        b = stack().get(url)
        c = stack().get(url)
        self.assertIn("hit", (b.headers["x-cache"], c.headers["x-cache"]))
        self.assertEqual(a.body, c.body)
        self.assertEqual(stack().get(url, headers={"If-None-Match": a.headers["etag"]}).status, 304)
        first = a.json()["items"][0]
        stack().request("PATCH", f"/admin/paints/{first['id']}", body={"stock": first["stock"] + 3})
        for _ in range(2):
            r = stack().get(url)
            self.assertEqual(r.json()["items"][0]["stock"], first["stock"] + 3)
        s1 = stack().get("/admin/paints/stats").json()
        new_paint(brand="Holbein")
        s2 = stack().get("/admin/paints/stats").json()
        self.assertEqual(s2["total"], s1["total"] + 1)


class Races(unittest.TestCase):
    def test_no_stale_read_after_an_acknowledged_write(self):
        """Readers hammer a cold key while a writer changes it: once a write
        is acknowledged, no read that starts later may return an older one."""
        p = new_paint(stock=0)
        url = f"/admin/paints/{p['id']}"
        acked = []          # (time, version) of acknowledged writes
        reads = []          # (start, version)
        stop = threading.Event()

        def reader():
            while not stop.is_set():
                t0 = time.monotonic()
                r = stack().get(url)
                reads.append((t0, r.json()["version"]))

        key = f"{prefix()}paint:{p['id']}"

        def writer():
            for i in range(40):
                redis("DEL", key)  # cold: readers race to fill it
                time.sleep(0.01)
                r = stack().request("PATCH", url, body={"stock": i + 1})
                acked.append((time.monotonic(), r.json()["version"]))
            stop.set()

        threads = [threading.Thread(target=reader) for _ in range(6)] + [threading.Thread(target=writer)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(acked), 40)
        stale = [(t0, v) for t0, v in reads
                 if any(ack_t < t0 and v < ack_v for ack_t, ack_v in acked)]
        self.assertEqual(stale, [], f"{len(stale)} stale reads of {len(reads)}")
        self.assertGreater(len(reads), 100)

    def test_a_hundred_cold_misses_read_the_database_a_handful_of_times(self):
        p = new_paint()
        url = f"/admin/paints/{p['id']}"
        redis("DEL", f"{prefix()}paint:{p['id']}", f"{prefix()}lease:paint:{p['id']}")
        before = paint_get_calls()
        gate = threading.Barrier(100)
        statuses = []

        def one():
            gate.wait()
            statuses.append(stack().get(url).status)

        threads = [threading.Thread(target=one) for _ in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(statuses, [200] * 100)
        self.assertLessEqual(paint_get_calls() - before, 5)


class RedisFaults(unittest.TestCase):
    def redis_pid(self):
        with open(os.path.join(stack().dir, "run", "redis.pid")) as f:
            return int(f.read())

    def wait_cache_up(self):
        stack().wait_until(lambda: all(stack().get("/admin/cache").json()["up"] for _ in range(4)),
                           timeout=30, what="cache back in use on both processes")

    def test_slow_redis_costs_a_timeout_rarely_not_per_request(self):
        p = new_paint()
        url = f"/admin/paints/{p['id']}"
        stack().get(url)
        pid = self.redis_pid()
        os.kill(pid, signal.SIGSTOP)  # Redis hangs: every command would time out
        try:
            times = []
            for _ in range(40):
                t0 = time.monotonic()
                r = stack().get(url)
                times.append(time.monotonic() - t0)
                self.assertEqual(r.status, 200)
                self.assertEqual(r.json()["id"], p["id"])
            w = stack().request("PATCH", url, body={"stock": 42})
            self.assertEqual(w.status, 200)
            self.assertEqual(stack().get(url).json()["stock"], 42)
        finally:
            os.kill(pid, signal.SIGCONT)
        slow = sum(1 for t in times if t >= 0.1)  # the Redis timeout is 100 ms
        self.assertLessEqual(slow, 10, f"{slow} of 40 requests waited on Redis")
        self.wait_cache_up()
        self.assertEqual(stack().get(url).json()["stock"], 42)

    def test_writes_while_redis_is_down_are_not_served_stale_after_restart(self):
        s = stack()
        p = new_paint(stock=5)
        other = new_paint(stock=1)
        url = f"/admin/paints/{p['id']}"
        for _ in range(4):
            s.get(url)  # cached on Redis, which persists it (appendonly)
            s.get(f"/admin/paints/{other['id']}")
        old = prefix()
        self.assertIn('"stock":5', redis("GET", f"{old}paint:{p['id']}"))
        redis("BGREWRITEAOF")
        time.sleep(0.5)
        s.script("redis-stop")
        try:
            for stock in (6, 7):
                w = s.request("PATCH", url, body={"stock": stock})
                self.assertEqual(w.status, 200, w)
            for _ in range(4):
                r = s.get(url)
                self.assertEqual(r.json()["stock"], 7)
                self.assertEqual(r.headers["x-cache"], "bypass")
            self.assertGreaterEqual(int(s.psql(
                f"SELECT count(*) FROM cache_outbox WHERE paint_id = {p['id']}")), 1)
        finally:
            s.script("redis-start")
        # Redis came back with its old data (the untouched paint proves it),
        # in a key space the service no longer reads: its copy of p (stock
        # 5) must never be served
        self.assertIn('"stock":1', redis("GET", f"{old}paint:{other['id']}"))
        self.assertIn('"stock":5', redis("GET", f"{old}paint:{p['id']}"))
        self.assertNotEqual(prefix(), old)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            self.assertEqual(s.get(url).json()["stock"], 7)
        self.wait_cache_up()
        for _ in range(4):
            self.assertEqual(s.get(url).json()["stock"], 7)
        self.assertEqual(s.psql(f"SELECT count(*) FROM cache_outbox WHERE paint_id = {p['id']}"), "0")


if __name__ == "__main__":
    unittest.main()
