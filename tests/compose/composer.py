"""The compose tests' tools: a compose project on the private Docker engine
(scripts/docker-engine.sh), HTTPS through its published nginx, and FastCGI
straight to one app container (to know which replica answered).

Everything runs as a client would: the published port is on 127.0.0.1; the
containers' own addresses are on the bridge network the project's dockerd
made on this machine.
"""
import http.client
import json
import os
import ssl
import subprocess
import tempfile
import time

import fcgi  # tests/integration, on run.py's path
from harness import AdminClient, free_port  # free_port: for the tests that import it from here

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DOCKER_HOST = "unix://" + os.environ.get("DOCKER_RUN", "/run/paintstudio-docker") + "/docker.sock"
DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
ADMIN_PASSWORD = "compose-admin-password"
EMPTY_ENV_FILE = os.path.join(tempfile.gettempdir(), "paintstudio-compose-test.env")


def docker_env():
    env = dict(os.environ, DOCKER_HOST=DOCKER_HOST)
    # The legacy builder: nothing to fetch (compose only builds if told to).
    env.pop("DOCKER_BUILDKIT", None)
    env.pop("COMPOSE_DOCKER_CLI_BUILD", None)
    return env


def docker(*args, timeout=120, check=True, input=None):
    p = subprocess.run([DOCKER, *args], env=docker_env(), capture_output=True, text=True,
                       timeout=timeout, input=input)
    if check and p.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed ({p.returncode}): {p.stderr[-3000:]}")
    return p.stdout


def container_logs(name):
    """A container's output, stdout and stderr together."""
    p = subprocess.run([DOCKER, "logs", name], env=docker_env(), capture_output=True,
                       text=True, timeout=60)
    return p.stdout + p.stderr


def wait_until(predicate, timeout=30, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (OSError, http.client.HTTPException) as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Project(AdminClient):
    """One compose project: a compose file, its environment, a name."""

    admin_password = ADMIN_PASSWORD

    def __init__(self, name, compose_file, env, port_var, https=True):
        self.name = name
        self.file = compose_file
        self.env = docker_env()
        self.env.update(env)
        self.port = int(env[port_var])
        self.https = https
        self.ctx = None
        self.session = None

    def argv(self, *args):
        """docker-compose's command line for this project."""
        # An empty --env-file: a developer's .env must not reach the tests.
        open(EMPTY_ENV_FILE, "w").close()
        return ["docker-compose", "--ansi", "never", "-p", self.name, "-f", self.file,
                "--project-directory", REPO, "--env-file", EMPTY_ENV_FILE, *args]

    def compose(self, *args, timeout=300, check=True):
        p = subprocess.run(self.argv(*args), env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError(f"docker-compose {' '.join(args)} failed ({p.returncode}):\n"
                               f"{p.stdout[-3000:]}\n{p.stderr[-5000:]}")
        return p.stdout

    def down(self):
        """Stops the project and removes its containers, volumes, networks."""
        return self.compose("down", "--volumes", "--remove-orphans", "--timeout", "20",
                            timeout=300, check=False)

    def finish(self, what):
        """A module's end: its suite's time, the logs if COMPOSE_LOGS=1, then
        down; fails if down left any container, volume or network."""
        print(f"{what}: suite in {time.monotonic() - self.t_suite:.1f}s", flush=True)
        if os.environ.get("COMPOSE_LOGS") == "1":
            print(self.logs(tail=200))
        t0 = time.monotonic()
        self.down()
        label = f"label=com.docker.compose.project={self.name}"
        left = docker("ps", "-aq", "--filter", label)
        left += docker("volume", "ls", "-q", "--filter", label)
        left += docker("network", "ls", "-q", "--filter", label)
        print(f"{what}: down in {time.monotonic() - t0:.1f}s", flush=True)
        if left.strip():
            raise AssertionError("docker-compose down left containers, volumes or networks: " + left)

    def ids(self, service):
        """Ids of a service's running containers (names are reused on scaling)."""
        return set(docker("ps", "-q", "--no-trunc",
                          "--filter", f"label=com.docker.compose.project={self.name}",
                          "--filter", f"label=com.docker.compose.service={service}").split())

    def containers(self, service):
        """Running containers of a service: [(name, address on its network)]."""
        out = docker("ps", "-q", "--filter", f"label=com.docker.compose.project={self.name}",
                     "--filter", f"label=com.docker.compose.service={service}")
        found = []
        for cid in out.split():
            info = json.loads(docker("inspect", cid))[0]
            nets = info["NetworkSettings"]["Networks"]
            ip = next(iter(nets.values()))["IPAddress"] if nets else ""
            found.append((info["Name"].lstrip("/"), ip))
        return sorted(found)

    def logs(self, service=None, tail=60):
        args = ["logs", "--no-color", "--tail", str(tail)]
        if service:
            args.append(service)
        return self.compose(*args, check=False, timeout=60)

    # -- HTTP(S) through the published nginx ---------------------------------
    @property
    def origin(self):
        # https even in front of plain HTTP: behind Railway's edge, browsers
        # are on https://<the Host>.
        return f"https://127.0.0.1:{self.port}"

    def trust_nginx_certificate(self):
        """Verify TLS against the certificate nginx made in its volume."""
        pem = self.compose("exec", "-T", "nginx", "cat", "/etc/paintstudio/tls/cert.pem",
                           timeout=60)
        with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
            f.write(pem)
        self.ctx = ssl.create_default_context(cafile=f.name)
        os.unlink(f.name)

    def connect(self, timeout, insecure=False):
        if not self.https:
            return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        ctx = ssl._create_unverified_context() if insecure else self.ctx
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=timeout)

    def psql(self, sql):
        """One statement in the db container as the superuser; its rows."""
        return self.compose("exec", "-T", "db", "psql", "-U", "paintstudio", "-d", "paintstudio",
                            "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql, timeout=60).strip()


# -- FastCGI to one replica --------------------------------------------------


def fastcgi(address, method, path, body=b"", headers=None, host="localhost", timeout=30):
    """One request straight to a replica at address (ip, port), with the
    parameters nginx would pass (nginx/fastcgi.conf). Returns a Response."""
    return fcgi.request(address, method, path, body=body, host=host, timeout=timeout,
                        headers=dict(headers or {}, Host=host))
