#!/usr/bin/env python3
"""A burst of N concurrent requests against a running stack (loopback only).

Reads the stack's settings from STACK_DIR/stack.env (var/ by default), fires
N requests at once (all threads released together), and reports the count of
2xx / 503 / other answers, the slowest request, and the highest number of
service connections PostgreSQL saw during the burst.

    python3 bench/burst.py [-n 500] [--path /admin/paints/{id}]
"""
import argparse
import http.client
import os
import random
import ssl
import subprocess
import threading
import time
from collections import Counter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_env(stack_dir):
    env = {}
    with open(os.path.join(stack_dir, "stack.env")) as f:
        for line in f:
            if line.startswith("export "):
                k, v = line[7:].strip().split("=", 1)
                env[k] = v.strip("'")
    return env


def bench_session(env, port, ctx):
    """Create (or reset) the admin user "bench" and log in as it."""
    import json
    import secrets
    pw = secrets.token_urlsafe(18)
    e = dict(os.environ, DATABASE_URL=env["DATABASE_URL"], ADMIN_PASSWORD=pw)
    subprocess.run([os.path.join(REPO, "build", "paintstudio"), "create-admin", "bench"],
                   env=e, check=True, capture_output=True)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    conn.request("POST", "/auth/login", body=json.dumps({"username": "bench", "password": pw}),
                 headers={"Content-Type": "application/json",
                          "Origin": f"https://127.0.0.1:{port}"})
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        raise SystemExit(f"bench login failed: {r.status} {body[:200]!r}")
    return r.getheader("Set-Cookie").split(";", 1)[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=500)
    ap.add_argument("--path", default="/admin/paints/{id}")
    ap.add_argument("--stack-dir", default=os.environ.get("STACK_DIR", os.path.join(REPO, "var")))
    args = ap.parse_args()
    env = load_env(args.stack_dir)
    base = env["BASE_URL"]
    assert base.startswith("https://127.0.0.1:"), "bursts target the local stack only"
    port = int(base.rsplit(":", 1)[1])
    ctx = ssl.create_default_context(cafile=os.path.join(args.stack_dir, "tls", "cert.pem"))
    cookie = bench_session(env, port, ctx)
    start = threading.Barrier(args.n + 1)
    results = []
    lock = threading.Lock()

    def one():
        path = args.path.replace("{id}", str(random.randint(1, 10000)))
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=120)
        conn.connect()  # TLS first, so the requests themselves arrive together
        start.wait()
        t0 = time.monotonic()
        try:
            conn.request("GET", path, headers={"Cookie": cookie})
            r = conn.getresponse()
            r.read()
            out = (r.status, r.getheader("Retry-After"), time.monotonic() - t0)
        except Exception as e:
            out = (repr(e), None, time.monotonic() - t0)
        finally:
            conn.close()
        with lock:
            results.append(out)

    peak = {"conns": 0}
    stop = threading.Event()

    def watch():
        q = ("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'paint\\_studio%'")
        while not stop.is_set():
            out = subprocess.run(["psql", env["PG_ADMIN_URL"], "-qAtX", "-c", q],
                                 capture_output=True, text=True).stdout.strip()
            if out.isdigit():
                peak["conns"] = max(peak["conns"], int(out))
            time.sleep(0.02)

    threads = [threading.Thread(target=one) for _ in range(args.n)]
    for t in threads:
        t.start()
    w = threading.Thread(target=watch)
    w.start()
    start.wait()
    for t in threads:
        t.join()
    stop.set()
    w.join()
    c = Counter()
    for st, retry, _ in results:
        if isinstance(st, int) and 200 <= st < 300:
            c["2xx"] += 1
        elif st == 503 and retry:
            c["503 with Retry-After"] += 1
        else:
            c[f"other ({st})"] += 1
    print(f"burst of {args.n} x GET {args.path} on {base}")
    for k, v in sorted(c.items()):
        print(f"  {k:24} {v}")
    print(f"  slowest                  {max(t for _, _, t in results):.2f} s")
    print(f"  peak server connections  {peak['conns']} (all service processes)")


if __name__ == "__main__":
    main()
