"""Redis Sentinel (REDIS_SENTINELS): the service asks the sentinels where
the master is, follows a failover that demotes the master it uses (its
connections answer READONLY, then the sentinels name the promoted
replica), and serves no stale read across the switch: the promoted
replica's key space is new, and trust is granted there by a drain before
anything is served from it. The stack's Redis is the master; a replica
and one sentinel (quorum 1, with a password of its own) are started here,
and the stack's Redis is master again when the test ends."""
import json
import os
import subprocess
import tempfile
import time
import unittest
import uuid

from harness import free_port, stack
from test_cache_faults import RACES, Race, ensure_redis, redis

MASTER = "paintstudio"
SENTINEL_PASSWORD = "sentinel-" + uuid.uuid4().hex[:8]


def cli(port, *args, password=None):
    env = dict(os.environ)
    if password is not None:
        env["REDISCLI_AUTH"] = password
    p = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True,
                       timeout=30, env=env)
    return p.stdout.strip()


def wait(predicate, what, timeout=40):
    stack().wait_until(predicate, timeout=timeout, what=what)


class Sentinel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        s = stack()
        pw = os.environ["REDISCLI_AUTH"]
        cls.dir = tempfile.mkdtemp(dir=s.dir, prefix="sentinel-")
        cls.procs = []
        # A demoted master must log in to the new one to follow it.
        redis("CONFIG", "SET", "masterauth", pw)
        cls.replica_port = free_port()
        cls.procs.append(subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(cls.replica_port),
             "--requirepass", pw, "--masterauth", pw, "--dir", cls.dir, "--save", "",
             "--appendonly", "no", "--replicaof", "127.0.0.1", str(s.redis_port),
             "--maxmemory", "256mb", "--maxmemory-policy", "volatile-lru",
             "--logfile", os.path.join(cls.dir, "replica.log")]))
        wait(lambda: "master_link_status:up" in cli(cls.replica_port, "INFO", "replication"),
             "the replica in sync")
        cls.sentinel_port = free_port()
        conf = os.path.join(cls.dir, "sentinel.conf")
        with open(conf, "w") as f:
            f.write(f"bind 127.0.0.1\nport {cls.sentinel_port}\ndir {cls.dir}\n"
                    f"requirepass {SENTINEL_PASSWORD}\n"
                    f"logfile {os.path.join(cls.dir, 'sentinel.log')}\n"
                    f"sentinel monitor {MASTER} 127.0.0.1 {s.redis_port} 1\n"
                    f"sentinel auth-pass {MASTER} {pw}\n"
                    f"sentinel down-after-milliseconds {MASTER} 1000\n"
                    f"sentinel failover-timeout {MASTER} 5000\n")
        cls.procs.append(subprocess.Popen(["redis-server", conf, "--sentinel"]))
        wait(lambda: cls.sentinel("SENTINEL", "REPLICAS", MASTER).count("slave") >= 1,
             "the sentinel to find the replica")
        cls.restore = s.restart_apps(
            REDIS_URL=f"redis://:{pw}@127.0.0.1:1/0",  # the host is the sentinels' to say
            REDIS_SENTINELS=f"127.0.0.1:{cls.sentinel_port}",
            REDIS_SENTINEL_MASTER=MASTER, REDIS_SENTINEL_PASSWORD=SENTINEL_PASSWORD)

    @classmethod
    def sentinel(cls, *args):
        return cli(cls.sentinel_port, *args, password=SENTINEL_PASSWORD)

    @classmethod
    def master_port(cls):
        out = cls.sentinel("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER).split()
        return int(out[1]) if len(out) == 2 else None

    @classmethod
    def tearDownClass(cls):
        s = stack()
        try:
            if cls.master_port() != s.redis_port:
                wait(lambda: "master_link_status:up" in redis("INFO", "replication"),
                     "the stack's Redis in sync as a replica")
                cls.sentinel("SENTINEL", "FAILOVER", MASTER)
                wait(lambda: cls.master_port() == s.redis_port
                     and "role:master" in redis("INFO", "replication"),
                     "the stack's Redis master again")
        finally:
            cls.restore()
            for p in cls.procs:
                p.terminate()
                p.wait(timeout=30)
            ensure_redis()
            redis("CONFIG", "SET", "masterauth", "")

    def caches(self, race):
        return [race.fc(i, "GET", "/admin/cache").json() for i in (0, 1)]

    def test_a_failover_is_followed_with_no_stale_read(self):
        s = stack()
        r = Race(uuid.uuid4().hex[:8])
        wait(lambda: all(c["up"] for c in self.caches(r)), "cache in use on both processes")
        for c in self.caches(r):
            self.assertEqual(c["sentinels"]["master"], f"127.0.0.1:{s.redis_port}", c)
        t0 = time.monotonic()
        # The switch happens amid the races (from race START), and the races
        # after END run once the sentinel names the promoted replica.
        r.run(lambda: self.sentinel("SENTINEL", "FAILOVER", MASTER),
              lambda: wait(lambda: self.master_port() == self.replica_port,
                           "the sentinel to name the promoted replica"))
        print(f"\n  {r.report('SENTINEL FAILOVER')} in {time.monotonic() - t0:.1f}s", flush=True)
        self.assertEqual(r.stale, [], f"{len(r.stale)} stale reads: {r.stale[:10]}")
        self.assertEqual(self.master_port(), self.replica_port)
        # Both processes follow the promoted replica, and serve from it again.
        want = f"127.0.0.1:{self.replica_port}"

        def followed():
            cs = self.caches(r)
            return all(c["up"] and c["sentinels"]["master"] == want for c in cs)
        wait(followed, "both processes on the new master")
        for c in self.caches(r):
            self.assertGreaterEqual(c["sentinels"]["switches"], 1, c)
        self.assertGreater(r.counts["hits"], RACES // 2)
        m = r.fc(0, "GET", "/metrics")
        self.assertEqual(m.status, 200, m)
        text = m.body.decode()
        self.assertIn(f'paintstudio_redis_master_info{{address="{want}"}} 1', text)
        self.assertIn("paintstudio_redis_master_switches_total", text)
        # Reads hit the new master's key space, never the old one's.
        p = r.paints[0]
        for _ in range(3):
            self.assertIsNotNone(r.item(0, p))
        keys = cli(self.replica_port, "--scan", "--pattern", "ps:*paint:%d" % p)
        self.assertTrue(keys, "no paint cached on the new master")
        print("  " + json.dumps(self.caches(r)[0]["sentinels"]), flush=True)


if __name__ == "__main__":
    unittest.main()
