"""The pool through nginx, as an incident would stress it: connections held
busy from outside (a table lock), a burst of requests, PostgreSQL
restarting under load."""
import threading
import time
import unittest
import uuid

from harness import stack

POOL_TIMEOUT = 1


def uncached(i):
    """A read that always reaches PostgreSQL: a list query no one asked before."""
    return f"/admin/paints?limit=1&q=nomatch-{uuid.uuid4().hex[:12]}-{i}"
STATEMENT_TIMEOUT_MS = 5000
# The longest any request may take: pool wait, then a statement cut by
# statement_timeout, plus generous slack for the sanitizer build.
DEADLINE = POOL_TIMEOUT + STATEMENT_TIMEOUT_MS / 1000 + 4


def burst(s, n, path_of, results, timeout=60):
    def one(i):
        t0 = time.monotonic()
        try:
            r = s.get(path_of(i), timeout=timeout)
            results.append((r.status, r.headers, time.monotonic() - t0))
        except Exception as e:  # a hang or reset is a failure to report
            results.append((0, {"error": repr(e)}, time.monotonic() - t0))
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads


class PoolUnderLock(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.restore = stack().restart_apps(DB_POOL_SIZE=2, DB_MAX_OVERFLOW=1,
                                           DB_POOL_TIMEOUT=POOL_TIMEOUT,
                                           DB_STATEMENT_TIMEOUT_MS=STATEMENT_TIMEOUT_MS)

    @classmethod
    def tearDownClass(cls):
        cls.restore()

    def test_exhausted_pool_answers_503_quickly_never_hangs(self):
        s = stack()
        seen = {"max": 0}
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                per = s.service_connections()
                seen["max"] = max([seen["max"], *per.values()])
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        lock = s.hold_paints_lock()
        results = []
        try:
            threads = burst(s, 50, uncached, results)
            time.sleep(2.5)
        finally:
            lock.release()
        for t in threads:
            t.join(timeout=120)
        stop.set()
        watcher.join()
        self.assertEqual(len(results), 50)
        statuses = sorted({st for st, _, _ in results})
        self.assertTrue(set(statuses) <= {200, 503}, statuses)
        self.assertIn(503, statuses)  # the pool was exhausted, and said so
        for st, h, took in results:
            if st == 503:
                self.assertIn("retry-after", h)
            self.assertLess(took, DEADLINE, f"a request took {took:.1f}s")
        self.assertLessEqual(seen["max"], 3, "more than size + overflow connections")
        self.assertGreater(seen["max"], 0)
        # afterwards everything answers normally again
        self.assertEqual(s.get("/admin/paints/1").status, 200)


class StuckDatabase(unittest.TestCase):
    """Two active worker threads per process, every one of them stuck in a
    statement behind a lock: the parked threads must take over, so /healthz
    and cached reads go on answering while the database is stuck."""
    ACTIVE = 2

    @classmethod
    def setUpClass(cls):
        cls.restore = stack().restart_apps(WORKERS_ACTIVE=cls.ACTIVE, DB_POOL_TIMEOUT=30,
                                           DB_STATEMENT_TIMEOUT_MS=30000)

    @classmethod
    def tearDownClass(cls):
        cls.restore()

    def test_parked_threads_take_over_from_stuck_ones(self):
        s = stack()
        self.assertEqual(s.get("/admin/paints/1").status, 200)  # cached from now on
        stuck = 3 * self.ACTIVE * s.processes  # nginx spreads them over the processes
        lock = s.hold_paints_lock()
        results = []
        try:
            threads = burst(s, stuck, uncached, results)
            # More statements wait for the lock than there are active threads
            # (the pool, 3+5, may hold back a few if nginx sent many to one process).
            s.wait_until(lambda: int(s.psql("SELECT count(*) FROM pg_stat_activity WHERE "
                                            "wait_event_type = 'Lock'", admin=True))
                         >= (self.ACTIVE + 1) * s.processes,
                         timeout=30, what="the statements to wait for the lock")
            for path in ("/healthz", "/admin/paints/1") * 5:
                t0 = time.monotonic()
                try:
                    r = s.get(path, timeout=20)
                except TimeoutError:
                    self.fail(f"{path} was not answered within 20 s with the database stuck; "
                              f"the services' logs end:\n{s.tail_logs(60)}")
                took = time.monotonic() - t0
                self.assertEqual(r.status, 200, path)
                self.assertLess(took, 2.0, f"{path} took {took:.1f} s with the database stuck")
            self.assertEqual(results, [], "a stuck request was answered before the lock went")
        finally:
            lock.release()
        for t in threads:
            t.join(timeout=60)
        self.assertEqual(sorted(st for st, _, _ in results), [200] * stuck)
        # The stuck threads lent their places (a request holding or awaiting a
        # database place lends it, as a pool wait does), or the watcher
        # unparked threads: either process answers, nginx gave each its share.
        w = s.get("/admin/metrics").json()["workers"]
        self.assertEqual(w["active_wanted"], self.ACTIVE)
        self.assertGreater(w["unparked_by_watcher"] + w["lends"], 0, w)


class PoolStatus(unittest.TestCase):
    def test_admin_pool_figures(self):
        st = stack().get("/admin/pool").json()
        for k in ("size", "max_overflow", "checked_in", "checked_out", "overflow", "invalid",
                  "waiting", "checkouts", "timeouts", "opened", "closed", "recycled", "failed",
                  "wait_seconds_total"):
            self.assertIn(k, st)
        self.assertEqual(st["max"], st["size"] + st["max_overflow"])
        self.assertLessEqual(st["open"], st["max"])


class PostgresRestart(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.restore = stack().restart_apps(DB_POOL_TIMEOUT=5, DB_POOL_PRE_PING=1)

    @classmethod
    def tearDownClass(cls):
        cls.restore()

    def test_service_recovers_by_itself(self):
        s = stack()
        results = []
        stop = threading.Event()

        def load():
            i = 0
            while not stop.is_set():
                i += 1
                t0 = time.monotonic()
                try:
                    r = s.get(uncached(i), timeout=60)
                    results.append((time.monotonic(), r.status, time.monotonic() - t0))
                except Exception:
                    results.append((time.monotonic(), 0, time.monotonic() - t0))

        workers = [threading.Thread(target=load) for _ in range(4)]
        for w in workers:
            w.start()
        time.sleep(1)
        s.script("pg-stop")
        time.sleep(1.5)
        s.script("pg-start")
        back = time.monotonic()
        time.sleep(3)
        stop.set()
        for w in workers:
            w.join(timeout=60)
        self.assertTrue(all(st in (200, 503) for _, st, _ in results),
                        sorted({st for _, st, _ in results}))
        # every request was bounded by its deadline (pool wait + statement)
        self.assertLess(max(took for _, _, took in results), 5 + 5 + 4)
        # once PostgreSQL was back (and the pool had a moment), all succeed
        after = [st for t, st, _ in results if t > back + 1.5]
        self.assertGreater(len(after), 10)
        self.assertEqual(set(after), {200})


if __name__ == "__main__":
    unittest.main()
