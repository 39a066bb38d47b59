"""/metrics as Prometheus reads it: promtool's lint finds nothing, the
latency histograms count the requests made, and every series the rules in
monitoring/rules/ read is exported."""
import glob
import os
import re
import shutil
import subprocess
import time
import unittest

from harness import REPO, stack

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape_each(s):
    """{pid: exposition text} of every service process: nginx spreads the
    scrapes, so scrape until each pid was seen."""
    seen = {}
    deadline = time.monotonic() + 30
    while len(seen) < s.processes and time.monotonic() < deadline:
        r = s.get("/metrics", auth=False)
        assert r.status == 200, r
        text = r.body.decode()
        pid = re.search(r'^paintstudio_info\{pid="(\d+)"\} 1$', text, re.M).group(1)
        seen.setdefault(pid, text)
    assert len(seen) == s.processes, f"saw processes {list(seen)}"
    return seen


def total(texts, name, **labels):
    """The sum over processes of name's samples whose labels include labels
    (whatever others they carry)."""
    n = 0.0
    for text in texts.values():
        for line in text.splitlines():
            m = SAMPLE.match(line)
            if m and m.group(1) == name:
                have = dict(LABEL.findall(m.group(2) or ""))
                if all(have.get(k) == v for k, v in labels.items()):
                    n += float(m.group(3))
    return n


def promtool(*args, stdin=None):
    return subprocess.run(["promtool", *args], input=stdin, capture_output=True, text=True,
                          timeout=60)


def rule_metric_names():
    """The service's metric names the rules read (recorded names, with a
    colon, and group names left out), histogram suffixes stripped."""
    names = set()
    for path in glob.glob(os.path.join(REPO, "monitoring", "rules", "*.yml")):
        with open(path) as f:
            for line in f:
                if re.match(r"\s*(#|- name:)", line):
                    continue
                for n in re.findall(r"(?<![\w:])(paintstudio_\w+)(?![\w:])", line):
                    names.add(re.sub(r"_(bucket|sum|count)$", "", n))
    return names


@unittest.skipIf(shutil.which("promtool") is None, "promtool missing (scripts/deps.sh)")
class PrometheusExposition(unittest.TestCase):
    def traffic(self, s, n):
        for _ in range(n):
            self.assertEqual(s.get("/admin/paints/stats").status, 200)
        self.assertEqual(s.get("/admin/paints?limit=2").status, 200)
        self.assertEqual(s.get("/admin/paints/not-an-id").status, 400)
        self.assertEqual(s.get("/healthz", auth=False).status, 200)
        self.assertEqual(s.get("/readyz", auth=False).status, 200)

    def test_promtool_check_metrics_finds_nothing(self):
        s = stack()
        self.traffic(s, 3)
        for pid, text in scrape_each(s).items():
            with self.subTest(pid=pid):
                p = promtool("check", "metrics", stdin=text)
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                self.assertEqual(p.stdout + p.stderr, "")

    def test_promtool_reports_a_bad_name(self):
        """The lint above can fail: a counter without _total is reported."""
        bad = "# HELP paintstudio_x A counter.\n# TYPE paintstudio_x counter\npaintstudio_x 1\n"
        p = promtool("check", "metrics", stdin=bad)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("_total", p.stdout + p.stderr)

    def test_route_histogram_counts_each_request(self):
        s = stack()
        s.get("/admin/paints/stats")  # logged in, the route's series exist
        before = scrape_each(s)
        for _ in range(6):
            self.assertEqual(s.get("/admin/paints/stats").status, 200)
        after = scrape_each(s)

        def delta(name, **labels):
            return total(after, name, **labels) - total(before, name, **labels)

        self.assertEqual(delta("paintstudio_http_request_duration_seconds_count",
                               route="paints.stats"), 6)
        self.assertEqual(delta("paintstudio_http_request_duration_seconds_bucket",
                               route="paints.stats", le="+Inf"), 6)
        self.assertEqual(delta("paintstudio_http_requests_total", route="paints.stats",
                               status="2xx"), 6)
        self.assertGreater(delta("paintstudio_http_request_duration_seconds_sum",
                                 route="paints.stats"), 0)

    def test_every_series_the_rules_read_is_exported(self):
        s = stack()
        self.traffic(s, 1)
        texts = scrape_each(s)
        typed = set()
        for text in texts.values():
            typed |= set(re.findall(r"^# TYPE (\S+) ", text, re.M))
        wanted = rule_metric_names()
        self.assertIn("paintstudio_http_requests_total", wanted)
        missing = sorted(wanted - typed)
        self.assertEqual(missing, [], "read by monitoring/rules/ but not in /metrics")

    def test_the_labels_the_rules_aggregate_by(self):
        """route and status on the request counter, route and le on the
        latency buckets: the rules sum by them."""
        s = stack()
        self.traffic(s, 1)
        texts = scrape_each(s)
        self.assertGreater(total(texts, "paintstudio_http_requests_total",
                                 route="readyz", status="2xx"), 0)
        self.assertGreater(total(texts, "paintstudio_http_request_duration_seconds_bucket",
                                 route="paints.stats", le="+Inf"), 0)
        self.assertGreater(total(texts, "paintstudio_pool_connections_max"), 0)


if __name__ == "__main__":
    unittest.main()
