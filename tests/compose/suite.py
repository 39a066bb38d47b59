"""The compose suite, as tests/run.py runs it: a private Docker engine, the
images (made here when missing, the project's rebuilt), the tests of
tests/compose/test_*.py (each module brings its compose project up and
down), the engine stopped. Every step is a check in the tally; the timing
of each is printed."""
import os
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import composer  # noqa: E402


def step(tally, name, argv, timeout):
    """Run one script as a check; returns whether it passed."""
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, env=composer.docker_env(), capture_output=True, text=True,
                           timeout=timeout)
        ok, out = p.returncode == 0, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        ok, out = False, f"timed out after {timeout}s: {e.stdout or ''}{e.stderr or ''}"
    sys.stdout.write(out)
    print(f"compose: {name} {'in' if ok else 'FAILED after'} {time.monotonic() - t0:.1f}s",
          flush=True)
    tally.add("compose", name, "pass" if ok else "fail", out[-4000:])
    return ok


def run(tally, result_class, pattern="test_*.py"):
    scripts = os.path.join(REPO, "scripts")
    t0 = time.monotonic()
    if not step(tally, "engine start", [os.path.join(scripts, "docker-engine.sh"), "start"], 120):
        return
    try:
        if (step(tally, "images (base, postgres:15, redis:7)",
                 [os.path.join(scripts, "docker-images.sh"), "base"], 900)
                and step(tally, "build (paintstudio:local, paintstudio-prometheus:local, "
                         "paintstudio-pg-auto-failover:local)",
                         [os.path.join(scripts, "docker-images.sh"), "project"], 900)):
            suite = unittest.TestLoader().discover(HERE, pattern=pattern, top_level_dir=HERE)
            runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2,
                                             resultclass=result_class)
            runner.run(suite)
    finally:
        step(tally, "engine stop", [os.path.join(scripts, "docker-engine.sh"), "stop"], 120)
        print(f"compose: everything in {time.monotonic() - t0:.1f}s", flush=True)
