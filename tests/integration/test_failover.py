"""The service follows a PostgreSQL failover, for real: a stack of its own
with a streaming replica made synchronous (a commit waits for the
replica's flush, so an acknowledged write is on both), the service given
both servers in libpq's multi-host form with target_session_attrs=read-write
(its DATABASE_URL in key=value form). Under steady writes and reads through
nginx, the primary's processes are killed with -9 and the replica promoted (what a
failover manager such as pg_auto_failover does; its own suite comes with
the HA stack). Counted and asserted:

- every answer is 2xx, or 503 with Retry-After (never a 500, never a hang
  for the pool's timeout);
- 0 acknowledged writes lost: each paint's final value on the new primary
  is its last acknowledged one or a later attempt;
- 0 stale reads: no read shows a version older than one acknowledged
  before the read began;
- both processes reach the new primary by themselves, and count the
  failover (/admin/pool: server, failovers, failover_seconds).

The writes' unavailability window (kill to first acknowledged write) and
the reads' p99 meanwhile are printed."""
import os
import signal
import subprocess
import threading
import time
import unittest
import urllib.parse
import uuid

import fcgi
import harness


class Failover(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = s = harness.Stack(binary=harness.stack().binary, processes=2, seed=200, replicas=1)
        try:
            s.start()
            # Synchronous: the primary's commits wait for the replica's flush.
            s.psql("ALTER SYSTEM SET synchronous_standby_names = '*'", admin=True)
            s.psql("SELECT pg_reload_conf()", admin=True)
            s.wait_until(lambda: s.psql("SELECT count(*) FROM pg_stat_replication "
                                        "WHERE sync_state = 'sync'", admin=True) == "1",
                         what="the replica synchronous")
            pw = urllib.parse.urlparse(s.settings["DATABASE_URL"]).password
            url = (f"host=127.0.0.1,127.0.0.1 port={s.pg_port},{s.replica_ports[0]} "
                   f"dbname=paintstudio user=paintstudio password={pw} sslmode=disable "
                   "target_session_attrs=read-write")
            s.restart_apps(DATABASE_URL=url, DATABASE_REPLICA_URLS="")
        except Exception:
            print(s.tail_logs())
            s.stop()
            s.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.s.stop()
        cls.s.cleanup()

    def pools(self):
        socks = [os.path.join(self.s.dir, "run", f"app-{i}.sock") for i in (1, 2)]
        host = f"127.0.0.1:{self.s.https_port}"
        self.s.get("/auth/me")
        out = []
        for sock in socks:
            r = fcgi.request(sock, "GET", "/admin/pool", host=host,
                             headers={"Cookie": self.s.session[0]})
            out.append(r.json()["primary"] if "primary" in r.json() else r.json())
        return out

    def test_primary_killed_and_replica_promoted(self):
        s = self.s
        tag = uuid.uuid4().hex[:8]
        targets = [s.request("POST", "/admin/paints", body={"name": f"fo-{tag}-{i}", "stock": 0})
                   .json()["id"] for i in range(4)]
        lock = threading.Lock()
        attempted = {t: [] for t in targets}
        acked = {t: [] for t in targets}      # (ack time, stock, version, sent)
        answers, stale, reads = [], [], []    # (time, status, retry-after) / messages / (t, took)
        stop = threading.Event()

        def writer(w):
            t, n = targets[w], 0
            while not stop.is_set():
                n += 1
                with lock:
                    attempted[t].append(n)
                sent = time.monotonic()
                try:
                    r = s.request("PATCH", f"/admin/paints/{t}", body={"stock": n}, timeout=40)
                except Exception as e:  # a connection nginx could not answer on
                    with lock:
                        answers.append((time.monotonic(), f"exception {e}", None))
                    time.sleep(0.05)
                    continue
                now = time.monotonic()
                with lock:
                    answers.append((now, r.status, r.headers.get("retry-after")))
                    if r.status == 200:
                        acked[t].append((now, n, r.json()["version"], sent))
                if r.status == 503:
                    time.sleep(0.05)

        def reader(k):
            i = 0
            while not stop.is_set():
                i += 1
                t = targets[(i + k) % len(targets)]
                t0 = time.monotonic()
                try:
                    r = s.get(f"/admin/paints/{t}", timeout=40)
                except Exception as e:
                    with lock:
                        answers.append((time.monotonic(), f"exception {e}", None))
                    continue
                took = time.monotonic() - t0
                with lock:
                    answers.append((t0 + took, r.status, r.headers.get("retry-after")))
                    reads.append((t0, took))
                    if r.status == 200:
                        floor = max((v for at, _, v, _ in acked[t] if at < t0), default=0)
                        if r.json()["version"] < floor:
                            stale.append(f"paint {t}: v{r.json()['version']} after v{floor}")
                if r.status == 503:
                    time.sleep(0.05)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
        threads += [threading.Thread(target=reader, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(3)
            # The machine lost: the postmaster and every backend at once
            # (killing the postmaster alone leaves its backends committing).
            with open(os.path.join(s.dir, "pg", "postmaster.pid")) as f:
                pm = int(f.readline())
            children = subprocess.run(["pgrep", "-P", str(pm)], capture_output=True,
                                      text=True).stdout.split()
            killed = time.monotonic()
            for pid in [pm] + [int(c) for c in children]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
            s.replica_psql(1, "SELECT pg_promote()")
            promoted = time.monotonic()
            time.sleep(8)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=90)

        bad = [(round(at - killed, 2), st) for at, st, ra in answers
               if not (isinstance(st, int) and (200 <= st < 300 or (st == 503 and ra)))]
        # The first write sent after the kill that was acknowledged.
        first_ack = min((at for t in targets for at, _, _, sent in acked[t] if sent > killed),
                        default=None)
        window = [took for t0, took in reads if killed <= t0 <= (first_ack or promoted)]
        window.sort()
        p99 = window[int(len(window) * 0.99)] if window else 0
        n503 = sum(1 for _, st, _ in answers if st == 503)
        print(f"\n  failover: {len(answers)} answers, {n503} of them 503 (with Retry-After), "
              f"{len(bad)} other; writes unavailable {first_ack - killed:.2f} s after the kill "
              f"({first_ack - promoted:.2f} s after the promotion); reads meanwhile: "
              f"{len(window)}, p99 {p99 * 1000:.0f} ms; {len(stale)} stale reads"
              if first_ack else "\n  failover: no write acknowledged after the kill", flush=True)
        self.assertEqual(bad, [], "answers other than 2xx or 503 with Retry-After")
        self.assertEqual(stale, [], "stale reads")
        self.assertIsNotNone(first_ack, "no write was acknowledged on the new primary")
        # Every acknowledged write is on the new primary (the old one is dead).
        for t in targets:
            final = int(s.replica_psql(1, f"SELECT stock FROM paints WHERE id = {t}"))
            if acked[t]:
                last = acked[t][-1][1]
                later = attempted[t][attempted[t].index(last):]
                self.assertIn(final, later, f"paint {t}: acknowledged {last}, found {final}")
        # Both processes moved, by themselves, and say so.
        want = f"127.0.0.1:{s.replica_ports[0]}"

        def moved():
            return all(p["server"] == want and p["failovers"] >= 1 for p in self.pools())
        s.wait_until(moved, timeout=30, what="both processes on the new primary")
        for p in self.pools():
            self.assertGreater(p["failover_seconds"], 0, p)
            self.assertEqual(p["unreachable_seconds"], 0, p)
        r = s.get("/readyz")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["database_server"], want)


if __name__ == "__main__":
    unittest.main()
