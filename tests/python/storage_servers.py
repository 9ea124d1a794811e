"""Servers for the storage-layer tests, all on 127.0.0.1 and started by the tests.

RangeServer: objects from memory over HTTP/1.1 with single byte ranges (206, Content-Range,
416), ETag, Last-Modified and If-Match (412) -- the parts of S3's GET that a range reader
relies on. FaultProxy: forwards to an upstream (RangeServer or moto) and misbehaves on
request, in order: latency, an error status with or without Retry-After, a reset or a
truncation mid-body, a stall, a 200 with the whole object instead of 206, or a change of
the object just before the request reaches it.
"""

import hashlib
import http.client
import http.server
import re
import socket
import struct
import threading
import time


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _start(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


class RangeServer:
    """`objects` maps a path ("/a.bin") to bytes; replace one to change the object."""

    def __init__(self, objects=None, honour_if_match=True):
        self.objects = dict(objects or {})
        self.honour_if_match = honour_if_match
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests = []  # (method, path, Range header)
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._answer(head=True)

            def do_GET(self):
                with owner.lock:
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                try:
                    self._answer(head=False)
                finally:
                    with owner.lock:
                        owner.in_flight -= 1

            def _answer(self, head):
                path = self.path.split("?")[0]
                rng = self.headers.get("Range")
                owner.requests.append((self.command, path, rng))
                data = owner.objects.get(path)
                if data is None:
                    return self._send(404, b"<Error><Code>NoSuchKey</Code></Error>", head=head)
                etag = '"' + hashlib.md5(data).hexdigest() + '"'
                common = {"ETag": etag, "Last-Modified": "Mon, 07 Dec 2026 00:00:00 GMT",
                          "Accept-Ranges": "bytes"}
                want = self.headers.get("If-Match")
                if owner.honour_if_match and want is not None and want != etag:
                    return self._send(412, b"<Error><Code>PreconditionFailed</Code></Error>",
                                      head=head)
                if rng is None:
                    return self._send(200, data, common, head)
                m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng)
                if not m or (m.group(1) == "" and m.group(2) == ""):
                    return self._send(400, b"bad range", head=head)
                n = len(data)
                if m.group(1) == "":
                    first, last = max(0, n - int(m.group(2))), n - 1
                else:
                    first = int(m.group(1))
                    last = min(n - 1, int(m.group(2))) if m.group(2) else n - 1
                if first >= n or last < first:
                    return self._send(416, b"", {"Content-Range": f"bytes */{n}", **common}, head)
                headers = {"Content-Range": f"bytes {first}-{last}/{n}", **common}
                return self._send(206, data[first:last + 1], headers, head)

            def _send(self, status, body, headers=None, head=False):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        _start(self.server)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class FaultProxy:
    """Forwards to 127.0.0.1:`upstream_port`. `faults` is consumed one per GET, in order;
    each is a dict: {"status": 503, "retry_after": "1"}, {"delay": 0.3}, {"reset": True},
    {"truncate": True}, {"stall": 5}, {"whole": True}, {"before": callable}; None or an
    exhausted list forwards the request unchanged. `always` applies to every GET."""

    def __init__(self, upstream_port, faults=None, always=None):
        self.upstream_port = upstream_port
        self.faults = list(faults or [])
        self.always = always
        self.lock = threading.Lock()
        self.seen = []  # (path, Range, fault applied)
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle(self):
                try:
                    super().handle()
                except OSError:
                    pass  # a connection we cut ourselves

            def do_GET(self):
                with owner.lock:
                    fault = owner.always or (owner.faults.pop(0) if owner.faults else None)
                    owner.seen.append((self.path, self.headers.get("Range"), fault))
                fault = fault or {}
                if "delay" in fault:
                    time.sleep(fault["delay"])
                if "before" in fault:
                    fault["before"]()
                if "status" in fault:
                    body = f"<Error><Code>Injected{fault['status']}</Code></Error>".encode()
                    self.send_response(fault["status"])
                    if fault.get("retry_after") is not None:
                        self.send_header("Retry-After", str(fault["retry_after"]))
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("connection", "keep-alive")}
                if fault.get("whole"):  # header names arrive in any case
                    headers = {k: v for k, v in headers.items()
                               if k.lower() not in ("range", "if-match")}
                conn = http.client.HTTPConnection("127.0.0.1", owner.upstream_port, timeout=30)
                conn.putrequest("GET", self.path, skip_host=True, skip_accept_encoding=True)
                for k, v in headers.items():
                    conn.putheader(k, v)
                conn.endheaders()
                resp = conn.getresponse()
                body = resp.read()
                conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "keep-alive", "transfer-encoding",
                                         "content-length", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if fault.get("reset") or fault.get("truncate") or "stall" in fault:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    if "stall" in fault:
                        time.sleep(fault["stall"])
                    if fault.get("reset"):  # RST rather than FIN
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                   struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                self.wfile.write(body)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        _start(self.server)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
