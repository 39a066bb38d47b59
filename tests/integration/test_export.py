"""GET /admin/paints/export.csv: the list's filters and order, every
matching paint once, CSV quoting and formula neutralisation read back by
Python's csv module, large catalogues in bounded memory, clients that go
away mid-stream, the read deadline, and the usual 400/401/403/503."""
import csv
import http.client
import io
import json
import os
import re
import struct
import threading
import time
import unittest
import uuid
from decimal import Decimal
from urllib.parse import urlencode

import fcgi
from harness import Response, stack
from test_basics import assert_problem
from test_load import rss_kb

FIELDS = ["id", "name", "brand", "color_code", "color_type", "color_family", "image_url",
          "stock", "price", "description", "color_preview", "created_at", "updated_at",
          "version", "low_stock_threshold"]
NUMBERS = ("id", "stock", "price", "version", "low_stock_threshold")
BOM = "\ufeff"
PATH = "/admin/paints/export.csv"


def export(params=None, **kw):
    return stack().get(PATH + ("?" + urlencode(params) if params else ""), timeout=300, **kw)


def unneutralise(cell):
    """What the service wrote, less the ' its codec puts before a cell a
    spreadsheet could read as a formula (and before one starting with ')."""
    if len(cell) >= 2 and cell[0] == "'" and cell[1] in "=+-@\t\r'":
        return cell[1:]
    return cell


def records(r):
    """The export's records as lists of cells (the header row first)."""
    assert r.status == 200, r
    text = r.body.decode("utf-8")
    assert text.startswith(BOM), text[:20]
    return list(csv.reader(io.StringIO(text[len(BOM):], newline="")))


def paints(r):
    """The export's paints as dicts by field, text unneutralised."""
    rows = records(r)
    assert rows[0] == FIELDS, rows[0]
    out = []
    for row in rows[1:]:
        assert len(row) == len(FIELDS), row
        out.append({k: v if k in NUMBERS else unneutralise(v) for k, v in zip(FIELDS, row)})
    return out


def walk(params):
    """Every item of the JSON list for params, following next_cursor."""
    items, cursor = [], None
    while True:
        p = dict(params, limit=200)
        if cursor:
            p["cursor"] = cursor
        r = stack().get("/admin/paints?" + urlencode(p))
        assert r.status == 200, r
        items.extend(r.json()["items"])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return items


def same_paint(t, row, item):
    """A CSV row says what the JSON item says, field by field."""
    for k in FIELDS:
        if k == "price":
            t.assertEqual(Decimal(row[k]), Decimal(str(item[k])), (k, row, item))
        elif k == "low_stock_threshold":  # null: an empty cell
            t.assertEqual(row[k], "" if item[k] is None else str(item[k]), (k, row, item))
        elif k in NUMBERS:
            t.assertEqual(int(row[k]), item[k], (k, row, item))
        else:
            t.assertEqual(row[k], item[k], (k, row, item))


def bump_lists():
    """After rows written by SQL: one write through the service, so no
    cached list page predates them."""
    r = stack().request("POST", "/admin/paints", body={"name": "export cache bump"})
    assert r.status == 201, r
    stack().request("DELETE", f"/admin/paints/{r.json()['id']}")


def seed(brand, n, description_len=0):
    """n paints of brand straight into PostgreSQL (names "<brand> 00001"...)."""
    stack().psql(
        "INSERT INTO paints (name, brand, color_code, color_type, color_family, description, "
        "stock, price) SELECT "
        f"'{brand} ' || lpad(i::text, 6, '0'), '{brand}', 'EX-' || i, "
        "(ARRAY['Acrylic','Oil','Watercolor'])[1 + i % 3], (ARRAY['Blue','Red','Green'])[1 + i % 3], "
        f"repeat('d', {int(description_len)}), i % 7, ((i * 37) % 10000) / 100.0 "
        f"FROM generate_series(1, {int(n)}) i")
    bump_lists()


def unseed(brand):
    stack().psql(f"DELETE FROM paints WHERE brand = '{brand}'")
    bump_lists()


def app_pids():
    s = stack()
    out = []
    for i in range(1, s.processes + 1):
        with open(os.path.join(s.dir, "run", f"app-{i}.pid")) as f:
            out.append(int(f.read()))
    return out


def log_line(request_id, i=1, timeout=15):
    """The access log line of request_id in app-i's log (waits for it)."""
    path = os.path.join(stack().dir, "log", f"app-{i}.log")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path, errors="replace") as f:
            for line in f:
                if request_id in line and '"route"' in line:
                    try:
                        o = json.loads(line)
                    except ValueError:
                        continue
                    if o.get("request_id") == request_id and "status" in o:
                        return o
        time.sleep(0.2)
    raise AssertionError(f"no log line for {request_id}")


class Shape(unittest.TestCase):
    def test_headers_and_header_row(self):
        r = export()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["content-type"], "text/csv; charset=utf-8")
        self.assertRegex(r.headers["content-disposition"],
                         r'^attachment; filename="paints-\d{8}-\d{6}\.csv"$')
        self.assertEqual(r.headers["cache-control"], "no-store")
        self.assertNotIn("etag", r.headers)
        self.assertEqual(records(r)[0], FIELDS)
        self.assertTrue(r.body.endswith(b"\r\n"))

    def test_head_has_the_headers_and_no_body(self):
        r = stack().request("HEAD", PATH + "?brand=Golden")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["content-type"], "text/csv; charset=utf-8")
        self.assertIn("attachment", r.headers["content-disposition"])
        self.assertEqual(r.body, b"")

    def test_the_whole_catalogue_is_the_database(self):
        got = paints(export())
        ids = [int(p["id"]) for p in got]
        want = [int(x) for x in stack().psql(
            "SELECT id FROM paints ORDER BY created_at DESC, id DESC").split("\n") if x]
        self.assertEqual(len(ids), len(set(ids)), "a paint appeared twice")
        self.assertEqual(ids, want)


class SameAsTheList(unittest.TestCase):
    def test_filters_and_sorts_match_paging_through_the_list(self):
        cases = [
            {"brand": "Golden"},
            {"brand": "Golden", "sort": "name"},
            {"color_family": "Blue", "in_stock": "true", "sort": "-price"},
            {"color_type": "Oil", "sort": "stock"},
            {"q": "cobalt", "sort": "-name"},
            {"min_price": "10", "max_price": "12.50", "sort": "price"},
            {"in_stock": "false", "sort": "created_at"},
            {"color_family": "Red", "sort": "-stock"},
        ]
        for params in cases:
            with self.subTest(params=params):
                items = walk(params)
                got = paints(export(params))
                ids = [int(p["id"]) for p in got]
                self.assertEqual(len(ids), len(set(ids)), "a paint appeared twice")
                self.assertEqual(ids, [p["id"] for p in items])
                for row, item in zip(got, items):
                    same_paint(self, row, item)
                self.assertTrue(ids or params.get("in_stock") == "false")


class Cells(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.brand = "Cells " + uuid.uuid4().hex[:8]
        cls.names = ["=1+2", "+SUM(A1:A9)", "-3 degrees", "@cmd", "'quoted", "a,b", 'say "hi"',
                     "Bleu de Prusse — é ü 漢字 🎨", "plain"]
        cls.ids = {}
        for i, name in enumerate(cls.names):
            r = stack().request("POST", "/admin/paints", body={
                "name": name, "brand": cls.brand, "color_code": f"=C{i}",
                "description": "line one\nline \"two\", three\r\n\tindented" if i % 2 else "-",
                "stock": i, "price": 1.5 + i})
            assert r.status == 201, r
            cls.ids[name] = r.json()["id"]

    def test_quoting_and_formulas_read_back(self):
        r = export({"brand": self.brand, "sort": "name"})
        text = r.body.decode("utf-8")
        # neutralised cells, quoted where they must be
        self.assertIn("'=1+2,", text)
        self.assertIn("'+SUM(A1:A9),", text)
        self.assertIn("'-3 degrees,", text)
        self.assertIn("'@cmd,", text)
        self.assertRegex(text, r"\d,''quoted,")
        self.assertIn('"a,b"', text)
        self.assertIn('"say ""hi"""', text)
        self.assertIn('"line one\nline ""two"", three\r\n\tindented"', text)
        # numbers are never neutralised
        self.assertRegex(text, r"\r\n\d+,'=1\+2,")
        got = paints(r)
        items = walk({"brand": self.brand, "sort": "name"})
        self.assertEqual(sorted(p["name"] for p in got), sorted(self.names))
        self.assertEqual([int(p["id"]) for p in got], [p["id"] for p in items])
        for row, item in zip(got, items):
            same_paint(self, row, item)

    def test_every_formula_start_is_neutralised(self):
        rows = records(export({"brand": self.brand}))
        for row in rows[1:]:
            for k, cell in zip(FIELDS, row):
                if k not in NUMBERS and cell:
                    self.assertNotIn(cell[0], "=+-@\t\r", (k, cell))

    def test_utf8_names(self):
        got = paints(export({"brand": self.brand, "q": "漢字"}))
        self.assertEqual([p["name"] for p in got], ["Bleu de Prusse — é ü 漢字 🎨"])


class Large(unittest.TestCase):
    N = 3000

    @classmethod
    def setUpClass(cls):
        cls.brand = "Large " + uuid.uuid4().hex[:8]
        seed(cls.brand, cls.N, description_len=40)

    @classmethod
    def tearDownClass(cls):
        unseed(cls.brand)

    def test_thousands_against_the_database(self):
        # qualified: the output column "price" is text
        for sort, order in (("name", "paints.name ASC, paints.id ASC"),
                            ("-price", "paints.price DESC, paints.id DESC"),
                            ("stock", "paints.stock ASC, paints.id ASC")):
            with self.subTest(sort=sort):
                got = paints(export({"brand": self.brand, "sort": sort}))
                want = stack().psql(
                    "SELECT id, name, color_code, stock, price::text, description, version "
                    f"FROM paints WHERE brand = '{self.brand}' ORDER BY {order}").split("\n")
                self.assertEqual(len(got), self.N)
                self.assertEqual([(p["id"], p["name"], p["color_code"], p["stock"], p["price"],
                                   p["description"], p["version"]) for p in got],
                                 [tuple(line.split("|")) for line in want])

    def test_filters_inside_the_seeded_rows(self):
        got = paints(export({"brand": self.brand, "color_family": "Red", "in_stock": "true",
                             "sort": "-created_at"}))
        want = [x for x in stack().psql(
            f"SELECT id FROM paints WHERE brand = '{self.brand}' AND color_family = 'Red' "
            "AND stock > 0 ORDER BY created_at DESC, id DESC").split("\n") if x]
        self.assertEqual([p["id"] for p in got], want)


class Refused(unittest.TestCase):
    def test_no_session_is_401(self):
        r = stack().get(PATH, auth=False)
        assert_problem(self, r, 401)

    def test_a_user_who_is_not_an_admin_is_403(self):
        name, pw = "u" + uuid.uuid4().hex[:12], "pw-" + uuid.uuid4().hex
        r = stack().request("POST", "/admin/users", body={"username": name, "password": pw})
        self.assertEqual(r.status, 201, r)
        cookie, _, r = stack().login(name, pw)
        self.assertIsNotNone(cookie, r)
        r = stack().get(PATH, auth=False, headers={"Cookie": cookie})
        assert_problem(self, r, 403)

    def test_bad_filters_are_the_lists_400(self):
        for params in ({"sort": "colour"}, {"in_stock": "maybe"}, {"min_price": "1.234"},
                       {"brand": ""}, {"nope": "1"}):
            with self.subTest(params=params):
                r = export(params)
                body = assert_problem(self, r, 400)
                listed = stack().get("/admin/paints?" + urlencode(params)).json()
                self.assertEqual(body["errors"], listed["errors"])
                self.assertEqual(body["detail"], listed["detail"])

    def test_limit_and_cursor_are_not_the_exports(self):
        cursor = stack().get("/admin/paints?limit=1").json()["next_cursor"]
        for params in ({"limit": "10"}, {"cursor": cursor}):
            with self.subTest(params=params):
                body = assert_problem(self, export(params), 400)
                self.assertEqual(list(body["errors"]), list(params))

    def test_database_timeout_is_503_before_any_byte(self):
        lock = stack().hold_paints_lock()
        try:
            t0 = time.monotonic()
            r = export({"brand": "Golden"})
            took = time.monotonic() - t0
        finally:
            lock.release()
        body = assert_problem(self, r, 503)
        self.assertIn("retry-after", r.headers)
        self.assertNotIn("content-disposition", r.headers)
        self.assertIn("try again", body["detail"])
        self.assertLess(took, 30)
        self.assertEqual(export({"brand": "Golden"}).status, 200)


class Streaming(unittest.TestCase):
    """The big ones: a catalogue of 50,000 more paints (about 17 MB of CSV),
    on processes restarted with a small ASan quarantine (freed memory held
    back would look like growth: 16 MB of it looked like 24 MB of growth)
    and a read deadline of 1 s, shorter than a slowly read export."""
    N = 50000

    @classmethod
    def setUpClass(cls):
        cls.brand = "Bulk " + uuid.uuid4().hex[:8]
        seed(cls.brand, cls.N, description_len=200)
        cls.restore = stack().restart_apps(
            FCGI_REQUEST_TIMEOUT=1, LOG_LEVEL="info",
            ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:quarantine_size_mb=1")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.restore()
        finally:
            unseed(cls.brand)

    def fastcgi_export(self, timeout=60):
        """Ask app-1 over its own socket for this class's export, as the
        admin, under a new request id: (connection, request id, socket)."""
        s = stack()
        s.get("/auth/me")  # the admin's session
        rid = uuid.uuid4().hex
        sock = os.path.join(s.dir, "run", "app-1.sock")
        c = fcgi.Connection(sock, timeout=timeout)
        c.sock.sendall(fcgi.request_bytes(PATH + "?" + urlencode({"brand": self.brand}),
                                          keep=True, headers={"Cookie": s.session[0]},
                                          extra={"REQUEST_ID": rid}))
        return c, rid, sock

    def test_memory_stays_bounded(self):
        pids = app_pids()
        export({"brand": "Golden"})  # each process's first export: its code and statements warm
        export({"brand": "Golden"})
        before = {pid: rss_kb(pid) for pid in pids}
        peak = dict(before)
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                for pid in pids:
                    peak[pid] = max(peak[pid], rss_kb(pid))
                time.sleep(0.02)

        w = threading.Thread(target=watch)
        w.start()
        try:
            t0 = time.monotonic()
            r = export({"brand": self.brand, "sort": "name"})
            took = time.monotonic() - t0
        finally:
            stop.set()
            w.join()
        size_kb = len(r.body) // 1024
        growth = max(peak[pid] - before[pid] for pid in pids)
        print(f"\nexport of {self.N} paints: {size_kb} KB in {took:.2f} s; service RSS "
              + ", ".join(f"pid {pid}: {before[pid]} KB -> peak {peak[pid]} KB" for pid in pids)
              + f"; largest growth {growth} KB ({100.0 * growth / size_kb:.1f} % of the export)",
              flush=True)
        got = paints(r)
        self.assertEqual(len(got), self.N)
        self.assertEqual([p["name"] for p in got],
                         [f"{self.brand} {i:06d}" for i in range(1, self.N + 1)])
        self.assertGreater(size_kb, 10000)
        self.assertLess(growth, size_kb / 4, "memory grew with the export's size")

    def test_a_slow_reader_outlasts_the_read_deadline(self):
        """Over the process's own socket, read slowly: the export takes
        longer than FCGI_REQUEST_TIMEOUT (1 s here) and still ends whole."""
        class Slow:
            def __init__(self, sock):
                self.sock = sock

            def recv(self, n):
                time.sleep(0.005)
                return self.sock.recv(min(n, 32768))

        t0 = time.monotonic()
        c, rid, _ = self.fastcgi_export()
        try:
            status, headers, body = fcgi.read_response(Slow(c.sock))
            took = time.monotonic() - t0
            # the connection is kept and serves the next request
            status_next, _, _ = c.request("/readyz")
        finally:
            c.close()
        self.assertEqual(status, 200)
        self.assertNotIn("content-length", headers)
        got = paints(Response(200, headers, body))
        self.assertEqual(len(got), self.N)
        self.assertGreater(took, 1.5)
        self.assertEqual(status_next, 200)
        line = log_line(rid)
        self.assertEqual(line["stream"], "complete", line)
        self.assertEqual(line["bytes"], len(body))
        self.assertGreater(line["total_ms"], 1000)

    def test_client_gone_mid_stream_over_fastcgi(self):
        s = stack()
        c, rid, sock = self.fastcgi_export(timeout=30)
        try:
            got = 0
            while got < 256 * 1024:
                chunk = c.sock.recv(65536)
                self.assertTrue(chunk, "the service closed the connection early")
                got += len(chunk)
        finally:
            c.close()
        line = log_line(rid)
        self.assertEqual(line["status"], 200)
        self.assertEqual(line["stream"], "client_gone", line)
        self.assertLess(line["bytes"], 17 * 1024 * 1024)
        # Nothing is left behind: the connection went back, the process serves on.
        self.assertEqual(fcgi.request(sock, "GET", "/readyz").status, 200)
        self.assertEqual(s.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' "
            "AND application_name LIKE 'paint\\_studio%'", admin=True), "0")
        pool = fcgi.request(sock, "GET", "/admin/pool", headers={"Cookie": s.session[0]})
        self.assertEqual(pool.status, 200, pool)
        self.assertLessEqual(pool.json()["checked_out"], 1, pool.json())  # its own, at most
        r = export({"brand": "Golden"})
        self.assertEqual(r.status, 200)

    def test_client_gone_mid_stream_through_nginx(self):
        s = stack()
        s.get("/auth/me")
        conn = s.connect(60)
        try:
            conn.request("GET", PATH + "?" + urlencode({"brand": self.brand}),
                         headers={"Cookie": s.session[0]})
            r = conn.getresponse()
            self.assertEqual(r.status, 200)
            self.assertEqual(len(r.read(100000)), 100000)
        finally:
            conn.close()
        for _ in range(3):
            self.assertEqual(export({"brand": "Golden"}).status, 200)
        self.assertEqual(s.get("/readyz").status, 200)
        s.wait_until(lambda: s.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' "
            "AND application_name LIKE 'paint\\_studio%'", admin=True) == "0",
            timeout=30, what="no transaction left open")

    def export_backends(self):
        """The pids of backends running a service's export (its cursor open)."""
        out = stack().psql(
            "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'paint\\_studio%' "
            "AND query LIKE '%paints\\_export%' AND state <> 'idle'", admin=True)
        return [int(x) for x in out.split()]

    def test_a_database_fault_mid_stream_cuts_the_file(self):
        """The export's backend is terminated while a slow reader reads:
        the answer ends without FastCGI's end (nginx passes the cut on),
        the log says "cut", and the process serves on."""
        s = stack()
        c, rid, sock = self.fastcgi_export()
        try:
            data = c.sock.recv(65536)
            self.assertTrue(data)  # the head is out
            pids = s.wait_until(self.export_backends, timeout=10, what="the export's backend")
            for pid in pids:
                s.psql(f"SELECT pg_terminate_backend({pid})", admin=True)
            while True:  # until the service closes the connection
                chunk = c.sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            c.close()
        types, pos = [], 0
        while pos + 8 <= len(data):
            _, rtype, _, clen, pad = struct.unpack(">BBHHBx", data[pos:pos + 8])
            types.append(rtype if clen else "end of STDOUT")
            pos += 8 + clen + pad
        self.assertEqual(set(types), {fcgi.STDOUT}, "the cut answer was ended")
        self.assertLess(pos, 17 * 1024 * 1024)
        line = log_line(rid)
        self.assertEqual((line["status"], line["stream"], line["cut_by"]),
                         (200, "cut", "database fault"), line)
        self.assertEqual(fcgi.request(sock, "GET", "/readyz").status, 200)
        self.assertEqual(export({"brand": "Golden"}).status, 200)

    def test_a_cut_through_nginx_is_an_incomplete_transfer(self):
        """The same through nginx: the client's transfer ends short
        (chunked, without its last chunk), never as a complete file."""
        s = stack()
        s.get("/auth/me")
        for attempt in range(5):
            conn = s.connect(60)
            try:
                conn.request("GET", PATH + "?" + urlencode({"brand": self.brand, "sort": "name"}),
                             headers={"Cookie": s.session[0]})
                r = conn.getresponse()  # the head is out: the rows are on their way
                self.assertEqual(r.status, 200)
                for pid in self.export_backends():
                    s.psql(f"SELECT pg_terminate_backend({pid})", admin=True)
                try:
                    body = r.read()
                except http.client.IncompleteRead as e:
                    print(f"\ncut after {len(e.partial)} bytes: IncompleteRead", flush=True)
                    break
                # the export ended before its backend was reached: again
                self.assertEqual(len(paints(Response(200, {}, body))), self.N)
            finally:
                conn.close()
        else:
            self.skipTest("five exports ended before their backend could be terminated")
        self.assertEqual(export({"brand": "Golden"}).status, 200)

    def test_statements_are_named(self):
        s = stack()
        for _ in range(4):
            export({"brand": "Golden"})
        text = "".join(fcgi.request(os.path.join(s.dir, "run", f"app-{i}.sock"), "GET", "/metrics",
                                    extra={"LISTENER_LOCAL": "1"}).body.decode()
                       for i in range(1, s.processes + 1))
        for name in ("paints_export_begin", "paints_export", "paints_export_fetch"):
            self.assertRegex(text, r'paintstudio_db_statement_duration_seconds_count\{statement="'
                             + re.escape(name) + r'"\} [1-9]')


if __name__ == "__main__":
    unittest.main()
