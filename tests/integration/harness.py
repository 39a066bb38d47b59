"""A throwaway stack for the integration tests, and helpers to talk to it.

The stack is the real thing: PostgreSQL 15, Redis, nginx with TLS and
paintstudio processes, started by scripts/stack.sh in a temporary folder on
free loopback ports, and stopped afterwards. Tests reach the service only
through nginx over HTTPS, as a client would.
"""
import base64
import hashlib
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.parse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STACK = None  # set by tests/run.py
ADMIN_PASSWORD = "integration-admin-password"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "WARNING: ThreadSanitizer")


_ports_given = set()


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A port free now on every address, below the kernel's ephemeral
    range: a port the kernel hands out itself (bind to 0) may be taken as
    an outgoing connection's source port before the server that is given
    it binds (nginx then fails with "Address already in use")."""
    import random
    high = _ephemeral_low()
    low = max(1024, high - 12000)
    for _ in range(200):
        port = random.randrange(low, high)
        if port in _ports_given:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        _ports_given.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # the range is full: the kernel's choice
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_url(url, db=None, **params):
    """A postgresql:// URL with its database replaced by db and params
    added to its query, whether it names a TCP host or, as the local
    stack's does, a socket folder in ?host=...&port=..."""
    u = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(u.query, keep_blank_values=True) + list(params.items())
    query = urllib.parse.urlencode(query, safe="/", quote_via=urllib.parse.quote)
    return urllib.parse.urlunsplit(u._replace(path="/" + db if db else u.path, query=query))


def b64url(raw):
    """base64url without padding, as the service writes tokens."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Response:
    def __init__(self, status, headers, body, set_cookies=()):
        self.status = status
        self.headers = headers  # lower-cased names; of repeated headers, the last
        self.body = body
        self.set_cookies = list(set_cookies)  # every Set-Cookie, in order

    def cookie(self, name):
        """The "name=value" of the Set-Cookie for name, or None."""
        for c in self.set_cookies:
            if c.startswith(name + "="):
                return c.split(";", 1)[0]
        return None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.body[:300]!r}>"


class HeldLock:
    """A psql session (started as argv, e.g. ["psql", url, "-qAtX"]) holding
    an exclusive lock on paints until released: requests that touch paints
    stay in flight meanwhile."""

    def __init__(self, argv, env=None):
        self.p = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.p.stdin.write("BEGIN; LOCK TABLE paints IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().strip()
        if line != "locked":
            raise RuntimeError("could not lock paints: " + line + self.p.stderr.read())

    def release(self):
        if self.p.poll() is None:
            self.p.stdin.write("COMMIT;\n\\q\n")
            self.p.stdin.flush()
            self.p.wait(timeout=30)


class AdminClient:
    """Requests through nginx as a client would, as the admin by default.
    A subclass gives connect(timeout, insecure), origin, admin_password and
    a session attribute (None until the first request logs in)."""

    def login(self, username="admin", password=None):
        """Log in; returns (cookie header value, csrf token, response), or
        (None, None, response) when refused."""
        r = self.request("POST", "/auth/login",
                         body={"username": username,
                               "password": self.admin_password if password is None else password},
                         auth=False, headers={"Origin": self.origin})
        if r.status != 200:
            return None, None, r
        cookie = r.cookie("__Host-ps_session")
        return cookie, r.json()["csrf_token"], r

    def request(self, method, path, body=None, headers=None, timeout=60, auth=True,
                insecure=False):
        """One request. With auth, as the admin: the session cookie, and for
        writes an Origin and the CSRF token (a header given in headers wins;
        one given as None is left out)."""
        if auth and self.session is None:
            cookie, csrf, r = self.login()
            if cookie is None:
                raise RuntimeError(f"admin login failed: {r}")
            self.session = (cookie, csrf)
        conn = self.connect(timeout, insecure)
        try:
            h = {}
            if auth:
                h["Cookie"] = self.session[0]
                if method not in ("GET", "HEAD"):
                    h["Origin"] = self.origin
                    h["X-CSRF-Token"] = self.session[1]
            h.update(headers or {})
            h = {k: v for k, v in h.items() if v is not None}
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                h.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data,
                            [v for k, v in r.getheaders() if k.lower() == "set-cookie"])
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)


class Stack(AdminClient):
    admin_password = ADMIN_PASSWORD

    def __init__(self, binary, processes=2, seed=10000, extra_env=None, replicas=0):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="paintstudio-test-")
        os.chmod(self.dir, 0o755)  # the postgres user must reach its data
        self.https_port = free_port()
        self.pg_port = free_port()
        self.redis_port = free_port()
        self.processes = processes
        self.replicas = replicas
        self.replica_ports = [free_port() for _ in range(replicas)]
        self.env = dict(os.environ)
        self.env.update({
            "STACK_DIR": self.dir,
            "HTTPS_PORT": str(self.https_port),
            "PG_PORT": str(self.pg_port),
            "REDIS_PORT": str(self.redis_port),
            "APP_PROCESSES": str(processes),
            "SEED_COUNT": str(seed),
            "BIN": binary,
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
            "LOG_LEVEL": "info",
            "LOG_FORMAT": "json",
            "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:halt_on_error=1",
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=0",
            "LSAN_OPTIONS": "suppressions=" + os.path.join(REPO, "tests", "lsan.supp"),
            # the suite logs in and fails on purpose often, all from 127.0.0.1;
            # test_auth narrows these to test throttling itself
            "LOGIN_MAX_FAILURES": "1000",
            # streaming replicas (test_replicas starts a stack of its own with them)
            "REPLICAS": str(replicas),
            "REPLICA_PORTS": ",".join(map(str, self.replica_ports)),
        })
        for k in ("DATABASE_URL", "REDIS_URL", "FCGI_LISTEN", "DATABASE_REPLICA_URLS"):
            self.env.pop(k, None)
        self.env.update(extra_env or {})
        self.settings = {}
        self.ctx = None
        self.session = None  # (cookie, csrf) of the admin, made on first use

    # -- life cycle ---------------------------------------------------------
    def script(self, *args, timeout=180, check=True):
        p = subprocess.run([os.path.join(REPO, "scripts", "stack.sh"), *args],
                           env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError(f"stack.sh {' '.join(args)} failed ({p.returncode}):\n"
                               f"{p.stdout}\n{p.stderr}")
        return p

    def start(self):
        t0 = time.monotonic()
        self.script("start")
        with open(os.path.join(self.dir, "stack.env")) as f:
            for line in f:
                if line.startswith("export "):
                    k, v = line[7:].strip().split("=", 1)
                    self.settings[k] = v.strip("'")
        # Redis asks for a password: every redis-cli the tests run finds it
        # here. A second stack (test_replicas starts one) gives the first's
        # back when it stops.
        self.saved_cli_auth = os.environ.get("REDISCLI_AUTH")
        if self.settings.get("REDISCLI_AUTH"):
            os.environ["REDISCLI_AUTH"] = self.settings["REDISCLI_AUTH"]
        self.ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "tls", "cert.pem"))
        print(f"stack: started in {time.monotonic() - t0:.1f}s in {self.dir}", flush=True)

    def stop(self):
        try:
            self.script("stop", timeout=120, check=False)
        except subprocess.TimeoutExpired:
            pass
        if getattr(self, "saved_cli_auth", None) is not None:
            os.environ["REDISCLI_AUTH"] = self.saved_cli_auth
        elif "saved_cli_auth" in vars(self):
            os.environ.pop("REDISCLI_AUTH", None)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self, pattern="app-*.log"):
        import glob
        out = []
        for p in sorted(glob.glob(os.path.join(self.dir, "log", pattern))):
            with open(p, errors="replace") as f:
                out.append((p, f.read()))
        return out

    def log_line(self, needle, timeout=10):
        """The complete log line holding needle (a request id, say). A
        request's line is written once its answer is sent, so a client may
        read the logs before it is there: wait for it."""
        def find():
            for _, text in self.logs():
                for line in text.splitlines(keepends=True):
                    if needle in line and line.endswith("\n"):
                        return line
            return None
        return self.wait_until(find, timeout=timeout, what=f"a log line with {needle}")

    def tail_logs(self, n=40):
        return "\n".join(f"--- {p}\n" + "\n".join(text.splitlines()[-n:])
                         for p, text in self.logs("*.log"))

    def sanitizer_reports(self):
        found = []
        for p, text in self.logs():
            for line_no, line in enumerate(text.splitlines()):
                if any(m in line for m in SANITIZER_MARKS):
                    found.append(f"{p}:{line_no + 1}: {line}")
                    lines = text.splitlines()[line_no:line_no + 30]
                    found.append("\n".join(lines))
                    break
        return "\n".join(found)

    # -- HTTP through nginx -------------------------------------------------
    @property
    def origin(self):
        return f"https://127.0.0.1:{self.https_port}"

    def connect(self, timeout, insecure=False):
        return http.client.HTTPSConnection("127.0.0.1", self.https_port, context=self.ctx,
                                           timeout=timeout)

    def hold_paints_lock(self):
        """A HeldLock on this stack's paints table (release() it)."""
        return HeldLock(["psql", self.settings["DATABASE_URL"], "-qAtX"])

    # -- PostgreSQL ---------------------------------------------------------
    def psql(self, sql, admin=False, db="paintstudio"):
        url = self.settings["DATABASE_URL"]
        if admin:
            url = self.settings["PG_ADMIN_URL"].rsplit("/", 1)[0] + "/" + db
        p = subprocess.run(["psql", url, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql],
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError(f"psql failed: {p.stderr}")
        return p.stdout.strip()

    def cookie_key(self):
        """The service's cookie-signing key (service_keys, migration 0010);
        a request first makes sure a process has stored it."""
        self.get("/auth/me")
        return bytes.fromhex(self.psql(
            "SELECT encode(key, 'hex') FROM service_keys WHERE name = 'cookies'"))

    def mint_sessions(self, user_ids, ttl=3600):
        """Open a session for each user id straight in PostgreSQL (no login,
        no Argon2id): a list of (cookie header value, csrf token), signed
        as the service signs them (keyed BLAKE2b, sessions.c)."""
        key = self.cookie_key()
        out, rows = [], []
        for uid in user_ids:
            token = os.urandom(32)
            rows.append(f"('\\x{hashlib.sha256(token).hexdigest()}', {int(uid)}, "
                        f"now() + interval '{int(ttl)} seconds')")
            mac = hashlib.blake2b(b"paintstudio session\0" + token, key=key,
                                  digest_size=16).digest()
            csrf = hashlib.blake2b(b"paintstudio csrf", key=token, digest_size=32).digest()
            out.append(("__Host-ps_session=" + b64url(token + mac), b64url(csrf)))
        if rows:
            self.psql("INSERT INTO sessions (token_hash, user_id, expires_at) VALUES "
                      + ", ".join(rows))
        return out

    def replica_psql(self, i, sql):
        """Run sql as the superuser on replica i (1-based)."""
        p = subprocess.run(["psql", self.settings[f"PG_REPLICA{i}_ADMIN_URL"], "-qAtX", "-v",
                            "ON_ERROR_STOP=1", "-c", sql], capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError(f"psql on replica {i} failed: {p.stderr}")
        return p.stdout.strip()

    def service_connections(self):
        """Connections PostgreSQL has open for each service process, by
        application_name (paint_studio-1, paint_studio-2, ...)."""
        out = self.psql("SELECT application_name, count(*) FROM pg_stat_activity "
                        "WHERE application_name LIKE 'paint\\_studio%' GROUP BY 1", admin=True)
        return {line.split("|")[0]: int(line.split("|")[1]) for line in out.splitlines() if line}

    def restart_apps(self, **overrides):
        """Restart the service processes with these settings; returns a
        function that restores the original ones."""
        self.script("app-stop")
        saved = {k: self.env.get(k) for k in overrides}
        self.env.update({k: str(v) for k, v in overrides.items()})
        self.script("app-start")
        self.wait_until(lambda: self.get("/readyz").status == 200, timeout=30, what="restart")

        def restore():
            self.script("app-stop")
            for k, v in saved.items():
                if v is None:
                    self.env.pop(k, None)
                else:
                    self.env[k] = v
            self.script("app-start")
            self.wait_until(lambda: self.get("/readyz").status == 200, timeout=30,
                            what="restart")
        return restore

    def wait_serving(self, timeout=30, what="the service after a fault"):
        """After a test that restarted PostgreSQL or the service: wait until
        /readyz says ready and 8 reads in a row that need the database (no
        cache can answer them) succeed, so the connections a restart broke
        are out of the pools and the tests after this one (in any order)
        start from a healthy stack."""
        self.wait_until(lambda: self.get("/readyz").status == 200, timeout=timeout, what=what)
        n = [0]

        def ok():
            q = f"/admin/paints?limit=1&q=serving-{time.monotonic_ns()}"
            n[0] = n[0] + 1 if self.get(q).status == 200 else 0
            return n[0] >= 8
        self.wait_until(ok, timeout=timeout, interval=0, what=what)

    def wait_until(self, predicate, timeout=30, interval=0.2, what="condition"):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")

    def run_binary(self, *args, env=None, timeout=60, stdin=None):
        e = dict(self.env)
        e["DATABASE_URL"] = self.settings["DATABASE_URL"]
        e["REDIS_URL"] = self.settings["REDIS_URL"]
        e.update(env or {})
        return subprocess.run([self.binary, *args], env=e, capture_output=True, text=True,
                              timeout=timeout, cwd=REPO, stdin=stdin)


def stack():
    if STACK is None:
        raise RuntimeError("run the integration tests through tests/run.py (make test)")
    return STACK
