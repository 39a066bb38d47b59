#!/usr/bin/env python3
"""Run every test suite and total them on one closing line.

1. C unit tests (cmocka, TAP output) from BUILD/tests/, the fuzzing
   corpora replayed, build/paintstudio's hardening (scripts/checksec.sh),
   the documentation's links (scripts/check-links.py), and the Prometheus
   rules in monitoring/ (promtool check and its unit tests).
2. Integration tests (tests/integration/test_*.py, unittest) against a
   throwaway stack: PostgreSQL, Redis, nginx and two paintstudio processes
   started on free loopback ports in a temporary folder, stopped afterwards.
3. The service's logs are checked for sanitizer reports.
4. The compose suite (tests/compose/): the Docker image and docker-compose.yml
   run for real on a private Docker engine (tests/compose/suite.py).

The last line is exactly "N passed, N failed[, N skipped]"; the exit code is
non-zero when anything failed.
"""
import argparse
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "integration"))

import harness  # noqa: E402


class Tally:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0
        self.failures = []

    def add(self, suite, name, outcome, detail=""):
        if outcome == "pass":
            self.passed += 1
        elif outcome == "skip":
            self.skipped += 1
        else:
            self.failed += 1
            self.failures.append(f"{suite}: {name}: {detail}".rstrip())


def test_binaries(build, folder):
    return sorted(p for p in glob.glob(os.path.join(build, folder, "test_*"))
                  if os.access(p, os.X_OK) and "." not in os.path.basename(p))


def run_cmocka(bins, tally, label, extra_env=None):
    """Run cmocka binaries with TAP output; every ok/not ok line counts."""
    if not bins:
        tally.add(label, "binaries", "fail", "no test binaries were built")
    env = dict(os.environ, CMOCKA_MESSAGE_OUTPUT="TAP")
    env.update(extra_env or {})
    for b in bins:
        suite = label + " " + os.path.basename(b)
        t0 = time.monotonic()
        p = subprocess.run([b], capture_output=True, text=True, env=env, timeout=300)
        seen = 0
        for line in p.stdout.splitlines():
            if line.startswith("ok "):
                seen += 1
                tally.add(suite, line, "pass")
            elif line.startswith("not ok "):
                seen += 1
                tally.add(suite, line, "fail", p.stdout[-2000:] + p.stderr[-2000:])
        if seen == 0 or (p.returncode != 0 and "not ok" not in p.stdout):
            tally.add(suite, "exit", "fail", f"exit {p.returncode}: {p.stderr[-3000:]}")
        print(f"{suite}: {seen} tests in {time.monotonic() - t0:.1f}s"
              + ("" if p.returncode == 0 else " (FAILED)"), flush=True)
        if p.returncode != 0:
            sys.stdout.write(p.stdout[-3000:] + p.stderr[-6000:])


class CountingResult(unittest.TextTestResult):
    tally = None
    label = "integration"

    def addSuccess(self, test):
        super().addSuccess(test)
        self.tally.add(self.label, test.id(), "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.tally.add(self.label, test.id(), "fail", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self.tally.add(self.label, test.id(), "fail", self._exc_info_to_string(err, test))

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self.tally.add(self.label, subtest.id(), "fail",
                           self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.tally.add(self.label, test.id(), "skip")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.tally.add(self.label, test.id(), "fail", "unexpected success")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.tally.add(self.label, test.id(), "fail", "expected failures are not allowed")


def run_fuzz_replay(build, tally):
    """Every committed fuzzing input through its harness, under the sanitizers."""
    bins = test_binaries_named(build, "fuzz-replay", "fuzz_")
    if not bins:
        tally.add("fuzz", "binaries", "fail", "no fuzz replay binaries were built")
    for b in bins:
        target = os.path.basename(b)[len("fuzz_"):]
        corpus = sorted(glob.glob(os.path.join(HERE, "fuzz", "corpus", target, "*")))
        if not corpus:
            tally.add("fuzz", target, "fail", "empty corpus")
            continue
        p = subprocess.run([b, *corpus], capture_output=True, text=True, timeout=300)
        ok = p.returncode == 0 and "runtime error" not in p.stderr
        tally.add("fuzz", f"{target} ({len(corpus)} inputs)", "pass" if ok else "fail",
                  p.stdout[-1000:] + p.stderr[-4000:])
        print(f"fuzz replay {target}: {len(corpus)} inputs" + ("" if ok else " (FAILED)"), flush=True)


def run_link_check(tally):
    """Every relative link in README.md and docs/*.md resolves (a file that
    exists, a heading for a #fragment): one test per page."""
    spec = importlib.util.spec_from_file_location(
        "check_links", os.path.join(REPO, "scripts", "check-links.py"))
    check_links = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_links)
    files = check_links.doc_files(REPO)
    if not files:
        tally.add("links", "README.md", "fail", "no README.md or docs/*.md to check")
    broken_total = 0
    for f in files:
        broken = check_links.check_file(f, REPO)
        broken_total += len(broken)
        tally.add("links", os.path.relpath(f, REPO), "fail" if broken else "pass",
                  "broken links:\n" + "\n".join(broken))
    print(f"links: {len(files)} pages, {broken_total} broken links", flush=True)


def run_checksec(tally):
    """The optimised build (build/paintstudio) carries the Makefile's
    hardening: PIE, full RELRO, stack protector, fortified calls."""
    binary = os.path.join(REPO, "build", "paintstudio")
    if not os.path.exists(binary):
        tally.add("hardening", "build/paintstudio", "skip")
        print("hardening: build/paintstudio not built (make all): skipped", flush=True)
        return
    p = subprocess.run([os.path.join(REPO, "scripts", "checksec.sh"), binary],
                       capture_output=True, text=True, timeout=60)
    tally.add("hardening", "checksec build/paintstudio", "pass" if p.returncode == 0 else "fail",
              p.stdout + p.stderr)
    sys.stdout.write(p.stdout)


def run_layer_check(tally):
    """Calls only go down the layers of app/ (scripts/check-layers.py)."""
    p = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "check-layers.py"), REPO],
                       capture_output=True, text=True, timeout=60)
    tally.add("layers", "no upward include, no cycle between folders",
              "pass" if p.returncode == 0 else "fail", p.stdout + p.stderr)
    sys.stdout.write(p.stdout)


def run_promtool(tally):
    """monitoring/: the rules are valid, their unit tests pass, and the
    example configuration loads (promtool, from Debian's prometheus)."""
    for verb, pattern in (("check rules", "monitoring/rules/*.yml"),
                          ("test rules", "monitoring/tests/*.yml"),
                          ("check config", "monitoring/prometheus.yml")):
        name = f"promtool {verb} {pattern}"
        files = sorted(glob.glob(pattern, root_dir=REPO))
        if shutil.which("promtool") is None:
            tally.add("prometheus", name, "fail",
                      "promtool not found (scripts/deps.sh installs Debian's prometheus)")
            continue
        if not files:
            tally.add("prometheus", name, "fail", "no files")
            continue
        p = subprocess.run(["promtool", *verb.split(), *files], capture_output=True,
                           text=True, timeout=120, cwd=REPO)
        tally.add("prometheus", name, "pass" if p.returncode == 0 else "fail",
                  p.stdout[-4000:] + p.stderr[-4000:])
        print(f"prometheus: {name}: {'ok' if p.returncode == 0 else 'FAILED'}", flush=True)


def test_binaries_named(build, folder, prefix):
    return sorted(p for p in glob.glob(os.path.join(build, folder, prefix + "*"))
                  if os.access(p, os.X_OK) and "." not in os.path.basename(p))


def run_db_tests(build, tsan_build, tally, stack):
    """C tests of modules against the stack's real PostgreSQL (and Redis)."""
    env = {"DATABASE_URL": stack.settings["DATABASE_URL"],
           "PG_ADMIN_URL": stack.settings["PG_ADMIN_URL"],
           "REDIS_URL": stack.settings["REDIS_URL"],
           "ASAN_OPTIONS": stack.env["ASAN_OPTIONS"],
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
           "LSAN_OPTIONS": stack.env["LSAN_OPTIONS"]}
    run_cmocka(test_binaries(build, "dbtests"), tally, "db", env)
    if tsan_build:
        env["TSAN_OPTIONS"] = "halt_on_error=0:second_deadlock_stack=1"
        run_cmocka(test_binaries(tsan_build, "dbtests"), tally, "db-tsan", env)


def run_browser(tally, stack):
    """The admin UI in headless Chromium (node --test, TAP output)."""
    env = dict(os.environ,
               BASE_URL=stack.settings["BASE_URL"],
               DATABASE_URL=stack.settings["DATABASE_URL"],
               ADMIN_PASSWORD=harness.ADMIN_PASSWORD,
               STACK_DIR=stack.dir,
               ARTIFACTS=os.path.join(REPO, "tests", "artifacts"),
               NODE_EXTRA_CA_CERTS=os.path.join(stack.dir, "tls", "cert.pem"))
    t0 = time.monotonic()
    marks = log_marks(stack)
    try:
        p = subprocess.run(["node", "--test", "--test-reporter=tap", "ui.test.mjs"],
                           cwd=os.path.join(HERE, "browser"), env=env, capture_output=True,
                           text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        tally.add("browser", "run", "fail", repr(e))
        return
    os.makedirs(env["ARTIFACTS"], exist_ok=True)
    with open(os.path.join(env["ARTIFACTS"], "browser.tap"), "w") as f:
        f.write(p.stdout + p.stderr)
    seen, failed = 0, 0
    lines = p.stdout.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("ok "):
            seen += 1
            tally.add("browser", line, "pass")
        elif line.startswith("not ok "):
            seen += 1
            failed += 1
            # the first failure is usually the cause of the rest: it carries
            # what the stack logged meanwhile; the others only their error
            detail = tap_block(lines, i)
            tally.add("browser", line, "fail",
                      detail + "\n" + logged_since(stack, marks) if failed == 1 else detail[:600])
    if seen == 0 or (p.returncode != 0 and "not ok" not in p.stdout):
        tally.add("browser", "exit", "fail", f"exit {p.returncode}: {p.stdout[-2000:]}{p.stderr[-2000:]}")
    print(f"browser ui.test.mjs: {seen} tests in {time.monotonic() - t0:.1f}s"
          + ("" if p.returncode == 0 else " (FAILED)"), flush=True)
    if p.returncode != 0:
        sys.stdout.write(p.stdout[-3000:] + p.stderr[-3000:])


def log_marks(stack):
    """How long each of the stack's logs is now, to read what comes after."""
    return {path: len(text) for path, text in stack.logs("*.log")}


def logged_since(stack, marks, n=12):
    """The service's warnings and errors, and nginx's refused /auth/ requests,
    logged since marks: their last n lines."""
    found = []
    for path, text in stack.logs("*.log"):
        for line in text[marks.get(path, 0):].splitlines():
            if ('"level":"warn"' in line or '"level":"error"' in line) and "slow request" not in line \
                    or "nginx-access" in path and '"POST /auth/' in line and ' 200 ' not in line:
                found.append(os.path.basename(path) + ": " + line[:300])
    return "what the stack logged meanwhile (warnings, errors, refused logins):\n" \
        + "\n".join(found[-n:]) + "\n"


def tap_block(lines, i):
    """The YAML block that follows TAP line i ("not ok ..."), up to its "...": the error."""
    block = []
    for line in lines[i + 1:]:
        if line.strip() == "...":
            break
        block.append(line)
    return "\n".join(block)


def run_integration(build, tally, pattern, tsan_build=None, db_tests=True):
    stack = harness.Stack(binary=os.path.join(REPO, build, "paintstudio"))
    try:
        stack.start()
    except Exception as e:  # the stack itself is a test: it must start
        tally.add("integration", "stack start", "fail", str(e) + "\n" + stack.tail_logs())
        stack.stop()
        return
    harness.STACK = stack
    try:
        if db_tests:
            run_db_tests(build, tsan_build, tally, stack)
        loader = unittest.TestLoader()
        suite = loader.discover(os.path.join(HERE, "integration"), pattern=pattern,
                                top_level_dir=os.path.join(HERE, "integration"))
        CountingResult.tally = tally
        runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2,
                                         resultclass=CountingResult)
        runner.run(suite)
        if db_tests:  # the whole suite: the browser too
            run_browser(tally, stack)
    finally:
        stack.stop()
        reports = stack.sanitizer_reports()
        if reports:
            tally.add("sanitizers", "service logs", "fail", reports)
        else:
            tally.add("sanitizers", "service logs", "pass")
        if os.environ.get("KEEP_STACK") != "1":
            stack.cleanup()


def run_valgrind(tally):
    """A short load on the plain build under valgrind (its own stack)."""
    t0 = time.monotonic()
    p = subprocess.run([os.path.join(REPO, "scripts", "valgrind.sh")], capture_output=True,
                       text=True, timeout=900)
    ok = p.returncode == 0 and "no memory errors, no leaks" in p.stdout
    tally.add("valgrind", "short load", "pass" if ok else "fail", p.stdout[-4000:] + p.stderr[-4000:])
    print(f"valgrind: {'clean' if ok else 'FAILED'} in {time.monotonic() - t0:.1f}s", flush=True)


def run_compose(tally, pattern):
    """The image and docker-compose.yml on a private Docker engine."""
    sys.path.insert(0, os.path.join(HERE, "compose"))
    import suite  # tests/compose/suite.py

    class ComposeResult(CountingResult):
        label = "compose"
    ComposeResult.tally = tally
    suite.run(tally, ComposeResult, pattern)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/address-undefined")
    ap.add_argument("--tsan-build", default=None,
                    help="also run the database tests of this ThreadSanitizer build")
    ap.add_argument("--only", choices=["unit", "integration", "compose"], default=None)
    ap.add_argument("--pattern", default="test_*.py", help="integration (or compose) files to run")
    args = ap.parse_args()
    tally = Tally()
    os.chdir(REPO)
    if args.only in (None, "unit"):
        run_cmocka(test_binaries(args.build, "tests"), tally, "unit")
        run_link_check(tally)
        run_fuzz_replay(args.build, tally)
        run_checksec(tally)
        run_layer_check(tally)
        run_promtool(tally)
    if args.only in (None, "integration"):
        run_integration(args.build, tally, args.pattern, args.tsan_build,
                        db_tests=args.pattern == "test_*.py")
    if args.only is None and os.path.exists(os.path.join(REPO, "build", "paintstudio")):
        run_valgrind(tally)
    if args.only in (None, "compose"):
        run_compose(tally, args.pattern)
    for f in tally.failures:
        print("FAILED " + f[:6000], file=sys.stderr)
    line = f"{tally.passed} passed, {tally.failed} failed"
    if tally.skipped:
        line += f", {tally.skipped} skipped"
    print(line)
    sys.exit(1 if tally.failed else 0)


if __name__ == "__main__":
    main()
