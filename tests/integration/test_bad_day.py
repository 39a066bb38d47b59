"""The bad day (issue #25): PostgreSQL saturated, here by writes stuck
behind a row lock in every place the admission gate has. Requests that need no database keep answering;
background refreshes are turned away first, quickly, with Retry-After,
while a person's requests keep their place; nothing waits DB_POOL_TIMEOUT;
the admission gate shows what it did. With DB_ADMISSION=off the same
test fails (background requests wait like everyone, and every worker
thread ends up waiting on PostgreSQL)."""
import re
import subprocess
import threading
import time
import unittest
import uuid

from harness import stack

POOL_TIMEOUT = 20
HOLD = 3.0      # seconds the lock is held
QUICK = 1.0     # a refusal, /healthz or a cached read takes less (sanitizer build, 2 cores)
BACKGROUND = {"X-Request-Purpose": "background"}


def uncached(tag):
    """A read that always reaches PostgreSQL: a list query no one asked before."""
    return f"/admin/paints?limit=1&q=badday-{uuid.uuid4().hex[:12]}-{tag}"


def burst(s, n, tag, results, headers=None):
    def one(i):
        t0 = time.monotonic()
        try:
            r = s.get(uncached(f"{tag}{i}"), headers=headers, timeout=60)
            results.append((r.status, r.headers, time.monotonic() - t0))
        except Exception as e:  # a hang or reset is a failure to report
            results.append((0, {"error": repr(e)}, time.monotonic() - t0))
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads


STUCK_PAINT = 3


class RowLock:
    """A transaction holding paint id's row (FOR UPDATE) until release():
    a write to that row waits meanwhile; reads and new connections (which
    prepare their statements) do not."""

    def __init__(self, s, paint_id):
        self.p = subprocess.Popen(["psql", s.settings["DATABASE_URL"], "-qAtX"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.p.stdin.write(f"BEGIN; SELECT 'locked' FROM paints WHERE id = {int(paint_id)} FOR UPDATE;\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().strip()
        if line != "locked":
            raise RuntimeError("could not lock the row: " + line + self.p.stderr.read())

    def release(self):
        if self.p.poll() is None:
            self.p.stdin.write("COMMIT;\n\\q\n")
            self.p.stdin.flush()
            self.p.wait(timeout=30)


def stock_writes(s, n, results):
    """n writes to STUCK_PAINT's stock, each in a thread."""
    def one():
        t0 = time.monotonic()
        try:
            r = s.request("POST", f"/admin/paints/{STUCK_PAINT}/stock", body={"delta": 1}, timeout=60)
            results.append((r.status, r.headers, time.monotonic() - t0))
        except Exception as e:
            results.append((0, {"error": repr(e)}, time.monotonic() - t0))
    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


def lock_waits(s):
    return int(s.psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
                      admin=True))


class SaturatedDatabase(unittest.TestCase):
    """Per process: a pool of 2 + 1, so 2 places (limit fixed at the
    ceiling; the third connection is the session look-ups' extra place)
    and a queue of 4; every place holds a write stuck behind a row lock."""
    SETTINGS = dict(DB_POOL_SIZE=2, DB_MAX_OVERFLOW=1, DB_POOL_TIMEOUT=POOL_TIMEOUT,
                    DB_STATEMENT_TIMEOUT_MS=15000, DB_ADMISSION="fixed", DB_ADMISSION_QUEUE=4,
                    DB_ADMISSION_TARGET_MS=50, DB_ADMISSION_INTERVAL_MS=100)

    @classmethod
    def setUpClass(cls):
        cls.restore = stack().restart_apps(**cls.SETTINGS)

    @classmethod
    def tearDownClass(cls):
        cls.restore()

    def admission(self, n=4):
        """The gate's figures (/admin/pool) as nginx's next n answers gave them."""
        return [stack().get("/admin/pool").json()["admission"] for _ in range(n)]

    def shed_total(self, reason=None, cls=None, n=8):
        """paintstudio_admission_shed_total summed over the processes (each
        seen by its pid in /metrics, asked n times), for reason and cls."""
        per_pid = {}
        for _ in range(n):
            text = stack().get("/metrics", auth=False).body.decode()
            pid = re.search(r'paintstudio_info\{pid="(\d+)"\}', text).group(1)
            total = 0
            for r, c, v in re.findall(r'paintstudio_admission_shed_total\{reason="(\w+)",'
                                      r'class="(\w+)"\} (\d+)', text):
                if (reason is None or r == reason) and (cls is None or c == cls):
                    total += int(v)
            per_pid[pid] = total
        return sum(per_pid.values())

    def test_saturated_database(self):
        s = stack()
        self.assertEqual(s.get("/admin/paints/2").status, 200)  # cached from now on
        persons, extra, background, quick, writes = [], [], [], [], []
        lock = RowLock(s, STUCK_PAINT)
        t_lock = time.monotonic()
        threads = []
        try:
            # Writes to the locked row take every place and wait there (one
            # more per process waits in the queue).
            threads += stock_writes(s, 3 * s.processes, writes)
            s.wait_until(lambda: lock_waits(s) >= 2 * s.processes, timeout=20,
                         what="the writes to wait for the row lock")
            # A person's reads: they wait in the queue, without a thread.
            threads += burst(s, 2 * s.processes, "p", persons)
            time.sleep(0.5)  # the queue has stood above its target for an interval
            # Background refreshes: turned away at once, with Retry-After.
            for i in range(6):
                t0 = time.monotonic()
                r = s.get(uncached(f"b{i}"), headers=BACKGROUND)
                background.append((r.status, r.headers, time.monotonic() - t0, r.body[:300]))
            # More persons than the queue holds: the newest are turned away, quickly.
            threads += burst(s, 24, "x", extra)
            # Requests that need no database answer as quickly as ever.
            for path in ("/healthz", "/admin/paints/2") * 5:
                t0 = time.monotonic()
                r = s.get(path, timeout=20)
                quick.append((path, r.status, time.monotonic() - t0))
            during = self.admission()
        finally:
            time.sleep(max(0.0, HOLD - (time.monotonic() - t_lock)))
            lock.release()
        for t in threads:
            t.join(timeout=60)

        for path, status, took in quick:
            self.assertEqual(status, 200, path)
            self.assertLess(took, QUICK, f"{path} took {took:.2f} s with the database saturated")
        for status, h, took, body in background:
            self.assertEqual(status, 503, "a background refresh was not turned away")
            self.assertIn("retry-after", h)
            self.assertLess(took, QUICK, f"a background refusal took {took:.2f} s: {body} {during}")
        # The persons who came first kept their place: all served once the lock went.
        self.assertEqual(sorted(st for st, _, _ in writes), [200] * (3 * s.processes), writes)
        self.assertEqual(sorted(st for st, _, _ in persons), [200] * (2 * s.processes), persons)
        statuses = {st for st, _, _ in extra}
        self.assertTrue(statuses <= {200, 503}, statuses)
        self.assertIn(503, statuses, "the queue is bounded: some were turned away")
        for st, h, took in extra:
            if st == 503:
                self.assertIn("retry-after", h)
                self.assertLess(took, QUICK, f"a refusal took {took:.2f} s")
        # Nothing waited for DB_POOL_TIMEOUT: the lock's hold and a little.
        for st, _, took in writes + persons + extra:
            self.assertLess(took, HOLD + 5, f"a request took {took:.1f} s (pool timeout {POOL_TIMEOUT} s)")

        # The gate said what it did, there and then.
        self.assertTrue(any(a["in_flight"] >= 1 for a in during), during)
        for a in during:
            self.assertEqual(a["mode"], "fixed")
            self.assertEqual(a["limit"], 2)
            self.assertEqual(a["ceiling"], 2)
            self.assertEqual(a["queue_max"], 4)
            self.assertEqual(set(a["queued"]), {"session", "person", "background"})
            self.assertEqual(set(a["shed"]), {"queue_delay", "queue_full", "background",
                                              "wait_timeout", "closed"})
        # ... and /metrics (Prometheus; loopback needs no token) counted it, by reason and class.
        self.assertEqual(self.shed_total("background", "background"), 6)
        self.assertEqual(self.shed_total(cls="person"), sum(1 for st, _, _ in extra if st == 503))
        self.assertEqual(self.shed_total("wait_timeout"), 0)
        text = s.get("/metrics", auth=False).body.decode()
        self.assertIn("paintstudio_admission_limit 2", text)
        self.assertIn('paintstudio_admission_queued{class="person"}', text)
        # and afterwards everything answers normally again
        self.assertEqual(s.get(uncached("after")).status, 200)


if __name__ == "__main__":
    unittest.main()


# A gate whose places are all held by reads stuck behind a table lock.
QUEUE_QUICK = 3.0  # at once, against DB_POOL_TIMEOUT (30 s here); sanitizer build


def timed_get(s, path, headers=None, timeout=60):
    t0 = time.monotonic()
    try:
        r = s.get(path, headers=headers, timeout=timeout)
        return r.status, r.headers, time.monotonic() - t0
    except Exception as e:  # a hang or reset is a failure to report
        return 0, {"error": repr(e)}, time.monotonic() - t0


def shed_totals(s):
    """paintstudio_admission_shed_total by (reason, class), summed over the
    processes (each /metrics answer is one process's; its pid tells which)."""
    per_pid = {}
    for _ in range(12):
        text = s.get("/metrics").body.decode()
        pid = re.search(r'paintstudio_info\{pid="(\d+)"\}', text).group(1)
        per_pid[pid] = {(m[0], m[1]): int(m[2]) for m in re.findall(
            r'paintstudio_admission_shed_total\{reason="(\w+)",class="(\w+)"\} (\d+)', text)}
        if len(per_pid) >= s.processes:
            break
    total = {}
    for counts in per_pid.values():
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v
    return total


class Figures(unittest.TestCase):
    def test_the_gate_in_admin_pool_and_metrics(self):
        s = stack()
        a = s.get("/admin/pool").json()["admission"]
        self.assertEqual(a["mode"], "adaptive")
        self.assertLessEqual(a["floor"], a["limit"])
        self.assertLessEqual(a["limit"], a["ceiling"])
        pool = s.get("/admin/pool").json()
        self.assertEqual(a["ceiling"], pool["max"] - 1, "one connection kept for session look-ups")
        for k in ("in_flight", "queued", "parked", "shed", "shed_by_class", "admitted",
                  "min_rtt_ms", "overloaded", "pressed"):
            self.assertIn(k, a)
        self.assertEqual(set(a["queued"]), {"session", "person", "background"})
        text = s.get("/metrics").body.decode()
        for name in ("paintstudio_admission_limit", "paintstudio_admission_in_flight",
                     'paintstudio_admission_queued{class="background"}',
                     'paintstudio_admission_shed_total{reason="queue_delay",class="person"}'):
            self.assertIn(name, text)


class QueueBehindALock(unittest.TestCase):
    """Two places per process (fixed), every one taken by a read stuck
    behind a lock on paints."""

    @classmethod
    def setUpClass(cls):
        cls.restore = stack().restart_apps(DB_POOL_SIZE=2, DB_MAX_OVERFLOW=1,
                                           DB_ADMISSION="fixed", DB_POOL_TIMEOUT=30,
                                           DB_STATEMENT_TIMEOUT_MS=30000)

    @classmethod
    def tearDownClass(cls):
        cls.restore()

    def test_polls_shed_at_once_people_queue_then_are_shed_cached_reads_go_on(self):
        s = stack()
        self.assertEqual(s.get("/admin/paints/1").status, 200)  # cached from now on
        before = shed_totals(s)
        stuck = []
        lock = s.hold_paints_lock()
        threads = []
        try:
            # More reads than places, so that every process has its places
            # taken whichever way nginx spreads them; the rest queue.
            n = 4 * s.processes
            for i in range(n):
                t = threading.Thread(target=lambda i=i: stuck.append(
                    timed_get(s, uncached(f"stuck{i}"))))
                t.start()
                threads.append(t)
            s.wait_until(lambda: int(s.psql("SELECT count(*) FROM pg_stat_activity WHERE "
                                            "wait_event_type = 'Lock'", admin=True))
                         >= 2 * s.processes, timeout=30,
                         what="every process's two places to wait on the lock")
            # A background poll that needs the database: turned away at once.
            polls = [timed_get(s, uncached("poll"), headers=BACKGROUND) for _ in range(6)]
            for st, h, took in polls:
                self.assertEqual(st, 503, h)
                self.assertIn("retry-after", h)
                self.assertLess(took, QUEUE_QUICK, f"a background poll was answered after {took:.1f} s")
            # The queue stands above its target (300 ms) for an interval:
            # a person's arrivals are turned away too, the newest first
            # (CoDel's control law: one at once, then one an interval
            # later, ...). The others join the queue and wait for the lock.
            time.sleep(0.6)
            late = []
            for i in range(12):
                t = threading.Thread(target=lambda i=i: late.append(
                    timed_get(s, uncached(f"late{i}"))))
                t.start()
                threads.append(t)
                time.sleep(0.06)
            s.wait_until(lambda: any(st == 503 for st, _, _ in list(late)), timeout=QUEUE_QUICK,
                         what="a late arrival to be turned away")
            shed_late = [(st, h, took) for st, h, took in list(late) if st == 503]
            for st, h, took in shed_late:
                self.assertIn("retry-after", h)
                self.assertLess(took, QUEUE_QUICK)
            # Requests that need no database keep answering.
            for path in ("/healthz", "/admin/paints/1") * 3:
                st, h, took = timed_get(s, path, timeout=20)
                self.assertEqual(st, 200, (path, h))
                self.assertLess(took, QUEUE_QUICK, f"{path} took {took:.1f} s with the database stuck")
            self.assertEqual(stuck, [], "a stuck read was answered before the lock went")
        finally:
            lock.release()
        for t in threads:
            t.join(timeout=60)
        # Every read that got a place or joined the queue is served (CoDel
        # turns arrivals away, never a request it has queued); a late
        # arrival was either turned away at once or served.
        self.assertEqual(sorted(st for st, _, _ in stuck), [200] * (4 * s.processes))
        self.assertEqual(len(late), 12)
        self.assertTrue({st for st, _, _ in late} <= {200, 503}, late)
        shed_late = [x for x in late if x[0] == 503]
        for st, h, took in shed_late:
            self.assertIn("retry-after", h)
            self.assertLess(took, QUEUE_QUICK, f"a late arrival was turned away after {took:.1f} s")
        after = shed_totals(s)
        grew = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        self.assertGreaterEqual(grew.get(("background", "background"), 0), 6, grew)
        self.assertGreaterEqual(grew.get(("queue_delay", "person"), 0), len(shed_late), grew)
        # And everything answers normally again.
        self.assertEqual(s.get(uncached("after")).status, 200)


class AdmissionOff(unittest.TestCase):
    """DB_ADMISSION=off: no gate, as before it: a background poll waits for
    the pool like everything else."""

    @classmethod
    def setUpClass(cls):
        cls.restore = stack().restart_apps(DB_POOL_SIZE=2, DB_MAX_OVERFLOW=1,
                                           DB_ADMISSION="off", DB_POOL_TIMEOUT=30,
                                           DB_STATEMENT_TIMEOUT_MS=30000)

    @classmethod
    def tearDownClass(cls):
        cls.restore()

    def test_a_poll_is_not_shed(self):
        s = stack()
        self.assertEqual(s.get("/admin/pool").json()["admission"]["mode"], "off")
        lock = s.hold_paints_lock()
        results = []
        try:
            t = threading.Thread(target=lambda: results.append(
                timed_get(s, uncached("offpoll"), headers=BACKGROUND)))
            t.start()
            time.sleep(1.0)
            self.assertEqual(results, [], "the poll was answered while the database was stuck")
        finally:
            lock.release()
        t.join(timeout=60)
        self.assertEqual(results[0][0], 200, results)
