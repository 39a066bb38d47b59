"""A tiny FastCGI client: talk to one service process through its own
socket, with the parameters nginx would send (nginx/fastcgi.conf), so a
test can choose which process serves a request."""
import json
import socket
import struct

BEGIN, END, PARAMS, STDIN, STDOUT = 1, 3, 4, 5, 6


def _record(kind, content, req_id=1):
    out = b""
    for i in range(0, max(len(content), 1), 65535):
        chunk = content[i:i + 65535]
        out += struct.pack(">BBHHBB", 1, kind, req_id, len(chunk), 0, 0) + chunk
        if not content:
            break
    return out


def _pair(name, value):
    def length(n):
        return struct.pack(">B", n) if n < 128 else struct.pack(">I", n | 0x80000000)
    n, v = name.encode(), value.encode()
    return length(len(n)) + length(len(v)) + n + v


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<fcgi {self.status} {self.body[:200]!r}>"


def request(sock_path, method, uri, body=b"", headers=None, host="127.0.0.1", timeout=30):
    """One request to the process listening on unix socket sock_path.
    headers: HTTP request headers by name (Cookie, Origin, X-CSRF-Token...)."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    path, _, query = uri.partition("?")
    params = {
        "REQUEST_METHOD": method, "REQUEST_URI": uri, "DOCUMENT_URI": path,
        "SCRIPT_NAME": path, "QUERY_STRING": query, "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "REQUEST_HOST": host, "HTTPS": "on",
        "CONTENT_LENGTH": str(len(body)),
    }
    if body:
        params["CONTENT_TYPE"] = "application/json"
    for k, v in (headers or {}).items():
        if v is None:
            continue
        key = k.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            params[key] = v
        else:
            params["HTTP_" + key] = v
    pairs = b"".join(_pair(k, v) for k, v in params.items())
    msg = (_record(BEGIN, struct.pack(">HB5x", 1, 0)) + _record(PARAMS, pairs)
           + _record(PARAMS, b"") + (_record(STDIN, body) if body else b"") + _record(STDIN, b""))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        s.sendall(msg)
        out = b""
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            done = False
            while len(buf) >= 8:
                _, kind, _, clen, plen, _ = struct.unpack(">BBHHBB", buf[:8])
                if len(buf) < 8 + clen + plen:
                    break
                content = buf[8:8 + clen]
                buf = buf[8 + clen + plen:]
                if kind == STDOUT:
                    out += content
                elif kind == END:
                    done = True
            if done:
                break
    finally:
        s.close()
    head, _, resp_body = out.partition(b"\r\n\r\n")
    status, hdrs = 200, {}
    for line in head.decode("latin-1").split("\r\n"):
        k, _, v = line.partition(":")
        if k.lower() == "status":
            status = int(v.strip().split()[0])
        elif k:
            hdrs[k.lower()] = v.strip()
    return Response(status, hdrs, resp_body)
