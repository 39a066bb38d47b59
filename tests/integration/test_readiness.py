"""Readiness follows PostgreSQL: 503 while it is down, 200 again once it is
back, without restarting the service; liveness never depends on it."""
import time
import unittest

from harness import stack


class Readiness(unittest.TestCase):
    def test_readyz_503_while_postgres_is_down_then_recovers(self):
        s = stack()
        self.assertEqual(s.get("/readyz").status, 200)
        s.script("pg-stop")
        try:
            # every process must notice: ask several times (nginx balances)
            for _ in range(6):
                t0 = time.monotonic()
                r = s.get("/readyz")
                elapsed = time.monotonic() - t0
                self.assertEqual(r.status, 503, r)
                self.assertEqual(r.headers["content-type"], "application/problem+json")
                self.assertIn("retry-after", r.headers)
                # bounded: readiness waits at most 2 s for the pool
                self.assertLess(elapsed, 15, "readiness hung while PostgreSQL was down")
            self.assertEqual(s.get("/healthz").status, 200)
            r = s.get("/admin/paints/1")
            self.assertEqual(r.status, 503, r)
            self.assertIn("retry-after", r.headers)
        finally:
            s.script("pg-start")
        # no restart of the service: the pool reconnects by itself
        s.wait_until(lambda: all(s.get("/readyz").status == 200 for _ in range(4)),
                     timeout=30, what="readiness after PostgreSQL restart")
        for _ in range(6):
            self.assertEqual(s.get("/admin/paints/1").status, 200)
        s.wait_serving()


if __name__ == "__main__":
    unittest.main()
