"""The cache's promise under Redis faults, with two service processes.

For each fault (READONLY, OOM, CLIENT KILL of one process's connections,
CLIENT PAUSE, DEBUG SLEEP, Redis stopped, Redis restarted from data older
than the writes) run 200 write-then-read races: the value is first cached
by the reading process, the write goes through one process's own FastCGI
socket, and the reads start right after its 2xx, through the other
process's socket (the paint and a list page holding it) and through nginx.
The fault starts after a quarter of the races and ends after three
quarters, so its onset and its end are both raced. A background reader
hammers the same paints through both sockets meanwhile. A read that starts
after a write's acknowledgement and returns an older version is stale: the
count must be 0.
"""
import os
import shutil
import signal
import subprocess
import threading
import time
import unittest
import uuid

import fcgi
from harness import stack

RACES = 200
START, END = 50, 150  # the fault lasts from race START to race END


def redis(*args, timeout=30):
    p = subprocess.run(["redis-cli", "-p", str(stack().redis_port), *args],
                       capture_output=True, text=True, timeout=timeout)
    return p.stdout.strip()


def app_pid(i):
    with open(os.path.join(stack().dir, "run", f"app-{i}.pid")) as f:
        return int(f.read())


def kill_clients_of(pid):
    """CLIENT KILL every Redis connection of one service process: by its
    client name, or, over TCP, by the local ports ss(8) shows for that
    process (the local stack's unix socket clients go by name only)."""
    ports = set()
    out = subprocess.run(["ss", "-Htnp", "dst", f"127.0.0.1:{stack().redis_port}"],
                         capture_output=True, text=True, timeout=10).stdout
    for line in out.splitlines():
        cols = line.split()
        if f"pid={pid}," in line and len(cols) >= 4:
            ports.add(cols[3].rsplit(":", 1)[1])
    n = 0
    for line in redis("CLIENT", "LIST").splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if fields.get("name") == f"paintstudio-{pid}" or fields.get("addr", ":").rsplit(":", 1)[1] in ports:
            redis("CLIENT", "KILL", "ID", fields["id"])
            n += 1
    return n


class Race:
    """Two processes, a set of paints in a list page of their own."""

    def __init__(self, tag):
        s = stack()
        s.get("/auth/me")  # logs in
        self.cookie, self.csrf = s.session
        self.host = f"127.0.0.1:{s.https_port}"
        self.socks = [os.path.join(s.dir, "run", f"app-{i}.sock") for i in (1, 2)]
        self.brand = f"race-{tag}"
        self.paints = []
        for i in range(8):
            r = s.request("POST", "/admin/paints", body={"name": f"race {tag} {i}", "brand": self.brand,
                                                         "stock": 1})
            assert r.status == 201, r
            self.paints.append(r.json()["id"])
        self.witnesses = []
        for i in range(4):
            r = s.request("POST", "/admin/paints", body={"name": f"witness {tag} {i}", "stock": 1})
            assert r.status == 201, r
            self.witnesses.append(r.json()["id"])
        self.list_url = f"/admin/paints?brand={self.brand}&limit=50"
        self.lock = threading.Lock()
        self.acked = {p: [] for p in self.paints + self.witnesses}  # paint -> [(ack time, version)]
        self.stale = []
        self.counts = {"item": 0, "list": 0, "nginx": 0, "background": 0, "hits": 0}
        self.ack_ms = []

    def fc(self, proc, method, uri, body=b""):
        return fcgi.request(self.socks[proc], method, uri, body=body, host=self.host,
                            headers={"Cookie": self.cookie, "Origin": "https://" + self.host,
                                     "X-CSRF-Token": self.csrf if method != "GET" else None})

    def acked_before(self, paint, t0):
        with self.lock:
            return max((v for t, v in self.acked[paint] if t < t0), default=0)

    def check(self, kind, paint, t0, version, detail):
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
        floor = self.acked_before(paint, t0)
        if version < floor:
            with self.lock:
                self.stale.append(f"{kind}: paint {paint} v{version} after v{floor} was acked ({detail})")

    def item(self, proc, paint, kind="item", detail=""):
        """Read a paint through process proc's socket; check it."""
        t0 = time.monotonic()
        r = self.fc(proc, "GET", f"/admin/paints/{paint}")
        if r.status != 200:
            return None
        how = r.headers.get("x-cache")
        if how == "hit":
            with self.lock:
                self.counts["hits"] += 1
        self.check(kind, paint, t0, r.json()["version"], f"process {proc + 1}, x-cache {how} {detail}")
        return r.json()["version"]

    def page(self, proc, kind="list", detail=""):
        """Read the race's list page through process proc; check every paint on it."""
        t0 = time.monotonic()
        r = self.fc(proc, "GET", self.list_url)
        if r.status != 200:
            return None
        how = r.headers.get("x-cache")
        versions = {p["id"]: p["version"] for p in r.json()["items"]}
        for paint, v in versions.items():
            self.check(kind, paint, t0, v, f"process {proc + 1}, list, x-cache {how} {detail}")
        return versions

    def one(self, k, before_write=None):
        """Race k: cache on the reader, write on the other, read at once."""
        paint = self.paints[k % len(self.paints)]
        writer, reader = k % 2, 1 - k % 2
        self.item(reader, paint, "prime")
        self.item(reader, paint, "prime")
        self.page(reader, "prime")
        self.page(reader, "prime")
        if before_write:
            before_write()
        t_w = time.monotonic()
        w = self.fc(writer, "POST", f"/admin/paints/{paint}/stock", body={"delta": 1})
        t_ack = time.monotonic()
        if w.status != 200:
            raise AssertionError(f"race {k}: write answered {w!r}")
        version = w.json()["version"]
        with self.lock:
            self.acked[paint].append((t_ack, version))
            self.ack_ms.append((t_ack - t_w) * 1000)
        self.item(reader, paint, "item", f"race {k}")
        self.page(reader, "list", f"race {k}")
        t0 = time.monotonic()
        r = stack().get(f"/admin/paints/{paint}")
        if r.status == 200:
            self.check("nginx", paint, t0, r.json()["version"], f"nginx, x-cache {r.headers.get('x-cache')}")

    def background(self, stop):
        n = 0
        while not stop.is_set():
            n += 1
            every = self.paints + self.witnesses
            try:
                self.item(n % 2, every[n % len(every)], "background")
            except OSError:
                time.sleep(0.01)

    def witness(self):
        """Paints cached at one version, then written once and left alone:
        a server that comes back with the old copies would serve them."""
        for paint in self.witnesses:
            for proc in (0, 1, 0, 1):
                self.item(proc, paint, "prime")

    def write_witnesses(self):
        for paint in self.witnesses:
            w = self.fc(0, "POST", f"/admin/paints/{paint}/stock", body={"delta": 1})
            assert w.status == 200, w
            with self.lock:
                self.acked[paint].append((time.monotonic(), w.json()["version"]))

    def run(self, start_fault, end_fault, before_write=None):
        stop = threading.Event()
        bg = threading.Thread(target=self.background, args=(stop,))
        bg.start()
        try:
            for k in range(RACES):
                if k == START:
                    start_fault()
                if k == END:
                    end_fault()
                self.one(k, before_write if START <= k < END else None)
        finally:
            stop.set()
            bg.join()

    def report(self, name):
        ms = sorted(self.ack_ms)
        return (f"{name}: {RACES} races, {self.counts} reads checked, {len(self.stale)} stale; "
                f"write ack ms p50 {ms[len(ms) // 2]:.0f}, max {ms[-1]:.0f}")


class CacheFaults(unittest.TestCase):
    def setUp(self):
        self.s = stack()
        self.wait_cache_up()

    def wait_cache_up(self):
        s = stack()
        race = getattr(self, "r", None)

        def up():
            if race is None:
                return all(s.get("/admin/cache").json()["up"] for _ in range(4))
            return all(race.fc(i, "GET", "/admin/cache").json()["up"] for i in (0, 1))
        s.wait_until(up, timeout=40, what="cache in use on both processes")

    def race(self, name, start_fault, end_fault, before_write=None, after=None):
        self.r = r = Race(uuid.uuid4().hex[:8])
        t0 = time.monotonic()
        try:
            r.run(start_fault, end_fault, before_write)
        finally:
            if after:
                after()
            ensure_redis()
        print(f"\n  {r.report(name)} in {time.monotonic() - t0:.1f}s", flush=True)
        self.assertEqual(r.stale, [], f"{len(r.stale)} stale reads: {r.stale[:10]}")
        self.assertGreaterEqual(r.counts["item"], RACES * 9 // 10)
        self.assertGreaterEqual(r.counts["list"], RACES * 9 // 10)
        # the races went through the cache outside the fault, not around it
        self.assertGreater(r.counts["hits"], RACES // 2)
        self.wait_cache_up()

    def test_readonly(self):
        self.race("READONLY (REPLICAOF)",
                  lambda: redis("REPLICAOF", "127.0.0.1", "1"),
                  lambda: redis("REPLICAOF", "NO", "ONE"),
                  after=lambda: redis("REPLICAOF", "NO", "ONE"))

    def test_oom(self):
        def start():
            redis("CONFIG", "SET", "maxmemory-policy", "noeviction")
            redis("CONFIG", "SET", "maxmemory", "1")

        def end():
            redis("CONFIG", "SET", "maxmemory", "256mb")
            redis("CONFIG", "SET", "maxmemory-policy", "volatile-lru")  # scripts/stack.sh's
        self.race("OOM (maxmemory, noeviction)", start, end, after=end)

    def test_client_kill_of_one_process(self):
        pid = app_pid(1)
        killed = []
        self.race("CLIENT KILL of process 1", lambda: None, lambda: None,
                  before_write=lambda: killed.append(kill_clients_of(pid)))
        # After each kill process 1 stays off Redis for its back-off (250 ms
        # doubling to 5 s), so only some writes find connections to kill;
        # a few kills while it writes are the fault under test.
        self.assertGreaterEqual(sum(killed), 3, "process 1's connections were hardly ever there to kill")

    def test_client_pause(self):
        self.race("CLIENT PAUSE (WRITE, then ALL)",
                  lambda: redis("CLIENT", "PAUSE", "2500", "WRITE"),
                  lambda: redis("CLIENT", "PAUSE", "2500", "ALL"),
                  after=lambda: redis("CLIENT", "UNPAUSE"))

    def test_debug_sleep(self):
        sleepers = []

        def sleep():
            sleepers.append(subprocess.Popen(["redis-cli", "-p", str(stack().redis_port), "DEBUG", "SLEEP", "2"],
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.race("DEBUG SLEEP", sleep, sleep,
                  after=lambda: [p.wait(timeout=30) for p in sleepers])
        self.assertEqual(len(sleepers), 2)

    def test_redis_stopped(self):
        self.race("Redis stopped", lambda: stack().script("redis-stop"),
                  lambda: stack().script("redis-start"))

    def test_redis_restarted_from_older_data(self):
        """A copy of Redis's data taken with the paints cached at old
        versions is put back after writes were acknowledged: a restore, a
        lost fsync or a promoted replica, all in one."""
        s = stack()
        data = os.path.join(s.dir, "redis", "appendonlydir")
        copy = os.path.join(s.dir, "redis-old-aof")
        old = {}

        def snapshot():
            self.r.witness()  # cached at v1 on both processes...
            time.sleep(1.2)  # (appendfsync everysec: on disk)
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(data, copy)
            old["prefix"] = prefix()
            old["keys"] = redis("KEYS", old["prefix"] + "paint:*").split()
            self.r.write_witnesses()  # ...then v2 acknowledged

        def crash_and_restore():
            with open(os.path.join(s.dir, "run", "redis.pid")) as f:
                os.kill(int(f.read()), signal.SIGKILL)
            time.sleep(0.3)
            shutil.rmtree(data)
            shutil.copytree(copy, data)
            s.script("redis-start")
            # the witnesses' v1 is back: let the background reader ask for
            # them until well after every process trusts the server again
            self.wait_cache_up()
            time.sleep(2)

        self.race("Redis restarted from older data", snapshot, crash_and_restore)
        # the restore had teeth: the old values came back, under the old key space
        self.assertTrue(old["keys"])
        back = redis("KEYS", old["prefix"] + "paint:*").split()
        self.assertTrue(set(old["keys"]) & set(back), "the restored Redis lacks the old values")
        self.assertNotEqual(prefix(), old["prefix"])
        shutil.rmtree(copy, ignore_errors=True)


def ensure_redis():
    """Leave Redis running and writable whatever a test did to it."""
    if redis("PING") != "PONG":
        stack().script("redis-start", check=False)
    redis("CLIENT", "UNPAUSE")
    redis("REPLICAOF", "NO", "ONE")
    redis("CONFIG", "SET", "maxmemory", "256mb")
    redis("CONFIG", "SET", "maxmemory-policy", "volatile-lru")  # scripts/stack.sh's


def prefix():
    """The key space the service uses on the Redis now running."""
    info = redis("INFO", "server") + "\n" + redis("INFO", "replication")
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    return "ps:" + fields["run_id"].strip()[:12] + fields["master_replid"].strip()[:12] + ":"


if __name__ == "__main__":
    unittest.main()
