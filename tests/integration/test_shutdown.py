"""SIGTERM drains: accepting stops, requests in flight finish, the process
exits cleanly, and the stack comes back with app-start."""
import os
import threading
import time
import unittest

from harness import stack


class Shutdown(unittest.TestCase):
    def test_sigterm_lets_in_flight_requests_finish(self):
        s = stack()
        pids = []
        for i in range(1, s.processes + 1):
            with open(os.path.join(s.dir, "run", f"app-{i}.pid")) as f:
                pids.append(int(f.read()))
        lock = s.hold_paints_lock()
        results = []
        try:
            def fetch(i):  # unique queries: never served from the cache
                results.append(s.get(f"/admin/paints?limit=1&q=drain-{time.time()}-{i}",
                                     timeout=60))

            threads = [threading.Thread(target=fetch, args=(i,)) for i in range(1, 5)]
            for t in threads:
                t.start()
            s.wait_until(lambda: int(s.psql(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'paint_studio%' "
                "AND wait_event_type = 'Lock'", admin=True)) >= 1,
                timeout=10, what="requests blocked on the lock")
            for pid in pids:
                os.kill(pid, 15)
            time.sleep(0.7)
            for pid in pids:
                # still draining: the blocked requests hold them
                if int(s.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
                              "'paint_studio%' AND wait_event_type = 'Lock'", admin=True)) > 0:
                    self.assertTrue(os.path.exists(f"/proc/{pid}"), "exited before its requests")
        finally:
            lock.release()
        for t in threads:
            t.join(timeout=60)
        self.assertEqual(len(results), 4)
        self.assertEqual(sorted(r.status for r in results), [200] * 4, results)
        for pid in pids:
            s.wait_until(lambda: not os.path.exists(f"/proc/{pid}") or
                         open(f"/proc/{pid}/stat").read().split()[2] == "Z",
                         timeout=30, what=f"process {pid} to exit")
        logs = "".join(text for _, text in s.logs())
        self.assertIn("drained in", logs)
        self.assertNotIn("shutdown timeout", logs)
        # new connections after the drain are refused by nginx as a JSON 502
        r = s.get("/healthz")
        self.assertEqual(r.status, 502)
        self.assertEqual(r.headers["content-type"], "application/problem+json")
        s.script("app-start")
        s.wait_serving(what="restart")


if __name__ == "__main__":
    unittest.main()
