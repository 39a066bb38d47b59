"""Deployment artefacts that can be exercised without a Docker engine: the
compose file parsed by docker-compose, .env.example complete, and the
Railway entrypoint run as it would run in its container (nginx on $PORT in
front of the service), including its drain and its exit when a process dies."""
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request
import uuid

from harness import REPO, free_port, pg_url, stack


def env_as_the_readme_says(*options):
    """The .env README's compose section makes (scripts/compose-env.sh)."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, ".env")
        subprocess.run([os.path.join(REPO, "scripts", "compose-env.sh"), *options, path],
                       check=True, capture_output=True, timeout=30)
        assert os.stat(path).st_mode & 0o077 == 0, "compose-env.sh: .env readable by others"
        return open(path).read()


def env_value(text, name):
    return re.search(rf"(?m)^{name}=(.*)$", text).group(1)


def compose_config(env_text):
    """docker-compose config with env_text as .env: (process, parsed YAML or None)."""
    import yaml  # docker-compose's own dependency
    with tempfile.NamedTemporaryFile("w", suffix=".env") as env:
        env.write(env_text)
        env.flush()
        p = subprocess.run(["docker-compose", "--env-file", env.name, "-f",
                            os.path.join(REPO, "docker-compose.yml"), "config"],
                           capture_output=True, text=True, timeout=60)
    return p, (yaml.safe_load(p.stdout) if p.returncode == 0 else None)


class Compose(unittest.TestCase):
    def setUp(self):
        if shutil.which("docker-compose") is None:
            self.fail("docker-compose is not installed (scripts/deps.sh installs it)")

    def test_compose_file_is_valid(self):
        p, _ = compose_config(env_as_the_readme_says())
        self.assertEqual(p.returncode, 0, p.stderr)
        for service in ("db:", "redis:", "migrate:", "app:", "nginx:"):
            self.assertIn(service, p.stdout)
        self.assertIn("service_completed_successfully", p.stdout)
        self.assertIn("pg_isready", p.stdout)

    def test_only_nginx_and_loopback_speak_fastcgi(self):
        # issue 24: .env.example's empty value used to replace compose's list
        # (${VAR-default}) and an empty list let any peer in
        _, cfg = compose_config(env_as_the_readme_says())
        self.assertEqual(cfg["services"]["app"]["environment"]["FCGI_WEB_SERVER_ADDRS"],
                         "nginx,127.0.0.1")
        for empty in ("", "FCGI_WEB_SERVER_ADDRS=\n"):
            text = re.sub(r"(?m)^FCGI_WEB_SERVER_ADDRS=.*\n", empty, env_as_the_readme_says())
            _, cfg = compose_config(text)
            self.assertEqual(cfg["services"]["app"]["environment"]["FCGI_WEB_SERVER_ADDRS"],
                             "nginx,127.0.0.1", repr(empty))
        dockerfile = open(os.path.join(REPO, "Dockerfile")).read()
        self.assertRegex(dockerfile, r"(?m)^ENV .*FCGI_WEB_SERVER_ADDRS=nginx,127\.0\.0\.1\b")

    def test_passwords_are_generated_and_never_left_empty(self):
        text = env_as_the_readme_says()
        pg, rd = env_value(text, "POSTGRES_PASSWORD"), env_value(text, "REDIS_PASSWORD")
        self.assertRegex(pg, r"^[0-9a-f]{48}$")
        self.assertRegex(rd, r"^[0-9a-f]{48}$")
        self.assertNotEqual(pg, rd)
        _, cfg = compose_config(text)
        app = cfg["services"]["app"]["environment"]
        self.assertEqual(app["REDIS_URL"], f"redis://:{rd}@redis:6379/0")
        self.assertIn(f":{pg}@db:", app["DATABASE_URL"])
        # .env.example copied as it is: compose refuses, naming the password
        for name in ("POSTGRES_PASSWORD", "REDIS_PASSWORD"):
            p, _ = compose_config(re.sub(rf"(?m)^{name}=.*$", f"{name}=", text))
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(name, p.stderr)

    def test_redis_is_bounded_and_nginx_is_local_and_unprivileged(self):
        text = env_as_the_readme_says()
        _, cfg = compose_config(text)
        cmd = cfg["services"]["redis"]["command"]
        self.assertEqual(cmd[cmd.index("--maxmemory-policy") + 1], "volatile-lru")
        self.assertRegex(cmd[cmd.index("--maxmemory") + 1], r"^[1-9][0-9]*[kmg]?b?$")
        self.assertEqual(cmd[cmd.index("--requirepass") + 1], env_value(text, "REDIS_PASSWORD"))
        nginx = cfg["services"]["nginx"]
        self.assertNotIn(str(nginx.get("user", "")), ("root", "0"))
        ports = nginx["ports"]
        self.assertEqual(len(ports), 1)
        port = ports[0]
        host_ip = port.get("host_ip") if isinstance(port, dict) else port.rsplit(":", 2)[0]
        self.assertEqual(host_ip, "127.0.0.1", ports)
        self.assertNotIn("www-data", open(os.path.join(REPO, "nginx", "compose.conf.in")).read())

    def test_ha_profile_from_env(self):
        """compose-env.sh --ha: the profile chosen by .env, the service on
        both PostgreSQL nodes and the sentinels; --single: back to db alone."""
        text = env_as_the_readme_says("--ha")
        self.assertEqual(env_value(text, "COMPOSE_PROFILES"), "ha")
        self.assertRegex(env_value(text, "PG_HA_PASSWORD"), r"^[0-9a-f]{48}$")
        _, cfg = compose_config(text)
        app = cfg["services"]["app"]["environment"]
        self.assertIn("@pg1:5432,pg2:5432/paintstudio?", app["DATABASE_URL"])
        self.assertIn("target_session_attrs=read-write", app["DATABASE_URL"])
        self.assertEqual(app["REDIS_SENTINELS"], "sentinel1:26379,sentinel2:26379,sentinel3:26379")
        self.assertEqual(app["REDIS_SENTINEL_PASSWORD"], env_value(text, "REDIS_PASSWORD"))
        # each node a read replica while it is the standby, sessions checked there
        pw = env_value(text, "POSTGRES_PASSWORD")
        self.assertEqual(app["DATABASE_REPLICA_URLS"], ",".join(
            f"postgresql://paintstudio:{pw}@{n}:5432/paintstudio"
            "?sslmode=disable&target_session_attrs=standby" for n in ("pg1", "pg2")))
        self.assertEqual(app["DB_REPLICAS_SYNCHRONOUS"], "1")
        for name in ("pg-monitor", "pg1", "pg2", "redis2", "sentinel1", "sentinel2", "sentinel3"):
            self.assertEqual(cfg["services"][name]["profiles"], ["ha"], name)
        self.assertEqual(cfg["services"]["pg1"]["environment"]["PG_HA_PASSWORD"],
                         env_value(text, "PG_HA_PASSWORD"))
        _, single = compose_config(
            re.sub(r"(?m)^(COMPOSE_PROFILES|POSTGRES_HOSTS|REDIS_SENTINELS)=.*$", r"\1=", text))
        app = single["services"]["app"]["environment"]
        self.assertIn("@db:5432/paintstudio?", app["DATABASE_URL"])
        self.assertEqual(app["REDIS_SENTINELS"], "")

    def test_every_variable_the_service_reads_is_in_env_example(self):
        names = set()
        for path in glob.glob(os.path.join(REPO, "app", "**", "*.c"), recursive=True):
            src = open(path).read()
            names |= set(re.findall(r'(?:get_int|get_str|parse_enum|env_get)\(envp, "([A-Z_]+)"', src))
            names |= set(re.findall(r'\{ "([A-Z_]+)", \d+, \d+, offsetof', src))
            names |= set(re.findall(r'getenv\("([A-Z_]+)"\)', src))
        self.assertGreater(len(names), 25)
        example = open(os.path.join(REPO, ".env.example")).read()
        listed = set(re.findall(r"^([A-Z_]+)=", example, re.M))
        self.assertEqual(names - listed, set())


class RailwayEntrypoint(unittest.TestCase):
    def start(self):
        s = stack()
        port = free_port()
        run_dir = tempfile.mkdtemp(prefix="railway-")
        os.chmod(run_dir, 0o755)
        self.addCleanup(shutil.rmtree, run_dir, True)
        env = dict(s.env, PORT=str(port), APP_DIR=REPO, RUN_DIR=run_dir,
                   WEB_ROOT=os.path.join(REPO, "build", "web"), PAINTSTUDIO=s.binary,
                   DATABASE_URL=s.settings["DATABASE_URL"], REDIS_URL=s.settings["REDIS_URL"],
                   APP_ENV="production", DB_POOL_SIZE="2", DB_POOL_TIMEOUT="5")
        env["DATABASE_URL"] = pg_url(env["DATABASE_URL"], sslmode="disable")  # the local server has no TLS
        p = subprocess.Popen([os.path.join(REPO, "scripts", "railway-entrypoint.sh")], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        base = f"http://127.0.0.1:{port}"
        s.wait_until(lambda: self.status(base + "/readyz") == 200, timeout=30,
                     what="the entrypoint's nginx to answer")
        return p, port, run_dir

    @staticmethod
    def status(url, timeout=30):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return 0

    def test_ready_on_port_ipv4_and_ipv6_then_drains_on_sigterm(self):
        p, port, _ = self.start()
        self.assertEqual(self.status(f"http://[::1]:{port}/healthz"), 200)
        # the realip module takes the client from X-Forwarded-For (rate limits, logs)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/healthz",
                                     headers={"X-Forwarded-For": "203.0.113.7"})
        self.assertEqual(urllib.request.urlopen(req, timeout=10).status, 200)
        # an in-flight request (held by a table lock) completes across SIGTERM
        cookie, csrf, r = stack().login()
        self.assertEqual(r.status, 200)
        lock = stack().hold_paints_lock()
        result = {}

        def slow():
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/admin/paints?limit=1&q=drain-{uuid.uuid4().hex}",
                headers={"Cookie": cookie})
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:
                    result["status"] = resp.status
            except urllib.error.HTTPError as e:
                result["status"] = e.code
        t = threading.Thread(target=slow)
        t.start()
        try:
            stack().wait_until(lambda: int(stack().psql(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND application_name = 'paint_studio'", admin=True)) >= 1,
                timeout=15, what="the request to block on the lock")
            p.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            self.assertIsNone(p.poll(), "exited before its request finished")
        finally:
            lock.release()
        t.join(timeout=60)
        self.assertEqual(result.get("status"), 200)
        self.assertEqual(p.wait(timeout=60), 0)
        out = p.stdout.read()
        self.assertIn("drained in", out)
        # nginx's access log (on stdout) names the client the edge reported
        self.assertRegex(out, r"(?m)^203\.0\.113\.7 \[.*\"GET /healthz ")

    def test_exits_when_the_service_dies(self):
        p, port, run_dir = self.start()
        out = subprocess.run(["pgrep", "-f", f"{stack().binary} serve", "-P", str(p.pid)],
                             capture_output=True, text=True).stdout.split()
        self.assertEqual(len(out), 1, out)
        os.kill(int(out[0]), signal.SIGKILL)
        self.assertNotEqual(p.wait(timeout=30), 0)
        self.assertEqual(self.status(f"http://127.0.0.1:{port}/healthz", timeout=2), 0)


if __name__ == "__main__":
    unittest.main()
