"""Load acceptance (counts, not timings): 512 concurrent clients for 30 s
against the default pool (5+10) on each of the two processes."""
import json
import os
import subprocess
import threading
import time
import unittest

from harness import REPO, stack

POOL_TIMEOUT = 20
STATEMENT_TIMEOUT = 5


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Load(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.restore = stack().restart_apps(
            DB_POOL_SIZE=5, DB_MAX_OVERFLOW=10, DB_POOL_TIMEOUT=POOL_TIMEOUT, LOG_LEVEL="warn",
            # a small ASan quarantine, so freed memory does not look like growth
            ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:quarantine_size_mb=16")

    @classmethod
    def tearDownClass(cls):
        cls.restore()

    def test_512_clients_for_30_seconds(self):
        s = stack()
        pids = []
        for i in range(1, s.processes + 1):
            with open(os.path.join(s.dir, "run", f"app-{i}.pid")) as f:
                pids.append(int(f.read()))
        s.get("/auth/me")  # a session for wrk
        cookie, _ = s.session
        samples = {pid: [] for pid in pids}
        conns = []
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                for pid in pids:
                    samples[pid].append(rss_kb(pid))
                conns.append(s.service_connections())
                time.sleep(0.5)

        w = threading.Thread(target=watch)
        w.start()
        env = dict(os.environ, BENCH_WRK_DIR=os.path.join(REPO, "bench", "wrk"),
                   BENCH_COOKIE=cookie, BENCH_MAX_ID="10000")
        try:
            p = subprocess.run(["wrk", "-t2", "-c512", "-d30s", "--timeout", "60s", "--latency",
                                "-s", os.path.join(REPO, "bench", "wrk", "get_random.lua"),
                                f"https://127.0.0.1:{s.https_port}"],
                               env=env, capture_output=True, text=True, timeout=120)
        finally:
            stop.set()
            w.join()
        line = [l for l in p.stdout.splitlines() if l.startswith("BENCH ")]
        self.assertTrue(line, p.stdout + p.stderr)
        r = json.loads(line[0][6:])
        print(f"\n    load: {r['requests']} requests, {r['rps']:.0f}/s, statuses {r['statuses']}, "
              f"max {r['max']:.0f} ms, peak connections {max(max(c.values(), default=0) for c in conns)}")
        self.assertGreater(r["requests"], 1000)
        bad = {k: v for k, v in r["statuses"].items() if not (k.startswith("2") or k == "503")}
        self.assertEqual(bad, {}, "answers other than 2xx and 503")
        self.assertEqual(r["no_retry_after"], 0, "503 without Retry-After")
        self.assertEqual(r["socket_errors"], 0)
        self.assertEqual(r["timeouts"], 0)
        self.assertLess(r["max"] / 1000, POOL_TIMEOUT + STATEMENT_TIMEOUT + 5, "a request hung")
        for per_process in conns:
            for name, n in per_process.items():
                self.assertLessEqual(n, 15, f"{name} had {n} connections")
        for pid, rss in samples.items():
            third = len(rss) // 3
            first, last = rss[third:2 * third], rss[2 * third:]  # after the warm-up third
            first_avg, last_avg = sum(first) / len(first), sum(last) / len(last)
            self.assertLess(last_avg, first_avg * 1.15 + 8192,
                            f"process {pid} grew from {first_avg:.0f} kB to {last_avg:.0f} kB")
        self.assertEqual(s.get("/readyz").status, 200)


if __name__ == "__main__":
    unittest.main()
