"""A small FastCGI client (the responder role) for tests that talk to a
service process's own socket, with the parameters nginx would send
(nginx/fastcgi.conf) and without nginx in between, so a test can choose
which process serves a request."""
import json
import socket
import struct

from harness import Response

VERSION, BEGIN, END, PARAMS, STDIN, STDOUT, STDERR = 1, 1, 3, 4, 5, 6, 7
RESPONDER, KEEP_CONN = 1, 1


def _record(rtype, req_id, content=b""):
    pad = (8 - len(content) % 8) % 8
    return struct.pack(">BBHHBx", VERSION, rtype, req_id, len(content), pad) + content + b"\0" * pad


def _length(n):
    return struct.pack(">B", n) if n < 128 else struct.pack(">I", n | 0x80000000)


def encode_params(params):
    out = b""
    for k, v in params.items():
        k, v = k.encode(), v.encode()
        out += _length(len(k)) + _length(len(v)) + k + v
    return out


def request_bytes(path, method="GET", keep=True, req_id=1, headers=None, body=b"",
                  host="127.0.0.1", extra=None):
    """The records nginx would send for one request. headers: HTTP request
    headers by name (Cookie, Origin, X-CSRF-Token...); None values are left out."""
    path_only, _, query = path.partition("?")
    params = {"REQUEST_METHOD": method, "REQUEST_URI": path, "SCRIPT_NAME": path_only,
              "DOCUMENT_URI": path_only, "QUERY_STRING": query, "SERVER_PROTOCOL": "HTTP/1.1",
              "REMOTE_ADDR": "127.0.0.1", "REQUEST_HOST": host, "HTTPS": "on",
              "CONTENT_LENGTH": str(len(body)) if body else ""}
    if body:
        params["CONTENT_TYPE"] = "application/json"
    for k, v in (headers or {}).items():
        if v is None:
            continue
        key = k.upper().replace("-", "_")
        params[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = v
    params.update(extra or {})  # parameters nginx itself sets (LISTENER_LOCAL...)
    p = encode_params(params)
    out = _record(BEGIN, req_id, struct.pack(">HB5x", RESPONDER, KEEP_CONN if keep else 0))
    for i in range(0, len(p), 65535):
        out += _record(PARAMS, req_id, p[i:i + 65535])
    out += _record(PARAMS, req_id)
    if body:
        out += _record(STDIN, req_id, body)
    return out + _record(STDIN, req_id)


def read_response(sock):
    """Read records until END_REQUEST; returns (status, headers, body)."""
    buf, out = b"", b""
    while True:
        while len(buf) < 8:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before the end of the response")
            buf += chunk
        _, rtype, _, clen, pad = struct.unpack(">BBHHBx", buf[:8])
        while len(buf) < 8 + clen + pad:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed inside a record")
            buf += chunk
        content, buf = buf[8:8 + clen], buf[8 + clen + pad:]
        if rtype == STDOUT:
            out += content
        elif rtype == END:
            break
    head, _, body = out.partition(b"\r\n\r\n")
    headers, status = {}, 200
    for line in head.decode("latin-1").split("\r\n"):
        k, _, v = line.partition(":")
        if k.lower() == "status":
            status = int(v.split()[0])
        elif k:
            headers[k.strip().lower()] = v.strip()
    return status, headers, body


class Connection:
    """One FastCGI connection to a unix socket path or (host, port), from
    the source address if given."""

    def __init__(self, where, timeout=10, source=None):
        if isinstance(where, str):
            family = socket.AF_UNIX
        else:
            family = socket.AF_INET6 if ":" in where[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect(where)

    def request(self, path, keep=True, **kw):
        self.sock.sendall(request_bytes(path, keep=keep, **kw))
        return read_response(self.sock)

    def close(self):
        self.sock.close()


def request(where, method, uri, body=b"", headers=None, host="127.0.0.1", timeout=30,
            source=None, extra=None):
    """One request on a connection of its own to the process listening at
    where (a unix socket path or (host, port)); body may be bytes or a
    JSON-able object. Raises OSError or ConnectionError when the service
    closes the connection without an answer."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    c = Connection(where, timeout=timeout, source=source)
    try:
        c.sock.sendall(request_bytes(uri, method=method, keep=False, headers=headers,
                                     body=body, host=host, extra=extra))
        return Response(*read_response(c.sock))
    finally:
        c.close()
