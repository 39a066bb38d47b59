"""Faults under steady load: PostgreSQL killed with -9 and restarted, Redis
stopped and started, one of the two service processes killed. Afterwards
every write that was answered 2xx is in the database, nothing is
half-written, the surviving process served throughout, and the service
recovered without a restart."""
import os
import signal
import threading
import time
import unittest
import uuid

from harness import stack


class Faults(unittest.TestCase):
    def test_nothing_acknowledged_is_lost(self):
        s = stack()
        s.get("/auth/me")
        tag = uuid.uuid4().hex[:8]
        pids = {}
        for i in (1, 2):
            with open(os.path.join(s.dir, "run", f"app-{i}.pid")) as f:
                pids[i] = int(f.read())
        targets = [s.request("POST", "/admin/paints", body={"name": f"fault-{tag}-{i}", "stock": 0}).json()["id"]
                   for i in range(4)]
        created, attempted, acked = [], {t: [] for t in targets}, {t: None for t in targets}
        counts = {"ok": 0, "failed": 0}
        timeline = []
        lock = threading.Lock()
        stop = threading.Event()

        def writer(w):
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    if n % 3 == 0:
                        name = f"fault-{tag}-w{w}-{n}"
                        r = s.request("POST", "/admin/paints", timeout=40,
                                      body={"name": name, "brand": "Fault", "stock": n, "price": 1.25})
                        if r.status == 201:
                            with lock:
                                created.append((r.json()["id"], name, n))
                    else:
                        t = targets[w]
                        with lock:
                            attempted[t].append(n)
                        r = s.request("PATCH", f"/admin/paints/{t}", body={"stock": n}, timeout=40)
                        if r.status == 200:
                            with lock:
                                acked[t] = n
                    with lock:
                        counts["ok" if r.status < 300 else "failed"] += 1
                        timeline.append((time.monotonic(), r.status))
                except Exception:
                    with lock:
                        counts["failed"] += 1
                        timeline.append((time.monotonic(), 0))
                    time.sleep(0.1)

        def reader():
            while not stop.is_set():
                try:
                    r = s.get(f"/admin/paints/{targets[0]}", timeout=40)
                    with lock:
                        timeline.append((time.monotonic(), r.status))
                except Exception:
                    with lock:
                        timeline.append((time.monotonic(), 0))
                    time.sleep(0.1)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
        threads += [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            time.sleep(2)
            s.script("pg-kill")
            time.sleep(1.5)
            for _ in range(20):  # orphaned backends leave shared memory shortly
                if s.script("pg-start", check=False).returncode == 0:
                    break
                time.sleep(0.5)
            pg_back = time.monotonic()
            time.sleep(4)
            s.script("redis-stop")
            time.sleep(2)
            s.script("redis-start")
            time.sleep(3)
            os.kill(pids[1], signal.SIGKILL)
            killed = time.monotonic()
            time.sleep(4)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=90)
            # bring both processes back for the rest of the suite
            s.script("app-stop")
            s.script("app-start")
            s.wait_serving(what="restart")

        print(f"\n    faults: {counts['ok']} writes answered 2xx, {counts['failed']} failed "
              f"(during the faults), {len(created)} paints created")
        # every acknowledged write is there; nothing half-written
        for pid, name, stock in created:
            row = s.psql(f"SELECT name, brand, stock, price::text FROM paints WHERE id = {pid}")
            self.assertEqual(row, f"{name}|Fault|{stock}|1.25")
        for t in targets:
            final = int(s.psql(f"SELECT stock FROM paints WHERE id = {t}"))
            if acked[t] is not None:
                later = attempted[t][attempted[t].index(acked[t]):]
                self.assertIn(final, later, f"paint {t}: acknowledged {acked[t]}, found {final}")
        self.assertGreater(counts["ok"], 20)
        # the service recovered by itself after PostgreSQL came back
        after_pg = [st for ts, st in timeline if pg_back + 3 < ts < killed]
        self.assertTrue(after_pg and all(st in (200, 201) for st in after_pg[-10:]), after_pg[-10:])
        # the surviving process kept serving after the other was killed
        after_kill = [st for ts, st in timeline if ts > killed + 1]
        self.assertGreater(sum(1 for st in after_kill if st in (200, 201)), 5, after_kill)


if __name__ == "__main__":
    unittest.main()
