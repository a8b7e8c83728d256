"""A fault-injecting HTTP proxy in front of moto's server, for S3 faults moto cannot make.

The tool talks to the proxy (``AWS_ENDPOINT_URL_S3``) exactly as to S3; every request is
forwarded to moto unchanged (the ``Host`` header too, so the signature still matches),
except those a test scripted a fault for::

    proxy.fail("HEAD", "faces/ref.jpg", "500", times=2)   # the next two HEADs of that key
    proxy.fail("PUT", "r/part.parquet", "slowdown")       # the next upload of that key
    proxy.fail("GET", "in.csv", "drop")                   # close the connection, no answer
    proxy.fail("HEAD", "faces/ref.jpg", "403", times=None)  # every time
    proxy.fail("HEAD", "*", "500", times=None)              # every HEAD of any key

Faults: ``slowdown`` (503 SlowDown), ``500`` (InternalError), ``403`` (AccessDenied) and
``drop`` (the connection closed after the request was read, before any answer). A rule
counts the requests it answered in ``served``, so a test can show the fault happened.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import unquote, urlsplit

__all__ = ["FAULTS", "Rule", "S3Proxy"]

FAULTS = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "403": (403, "AccessDenied", "Access Denied"),
    "drop": (0, "", ""),
}
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


@dataclass
class Rule:
    """Answer ``method`` requests for ``key`` with ``fault``, ``times`` times (None: always)."""

    method: str
    key: str
    fault: str
    times: int | None = 1
    served: int = 0

    def matches(self, method: str, key: str) -> bool:
        left = self.times is None or self.served < self.times
        return left and method == self.method and self.key in (key, "*")


class S3Proxy:
    """The proxy, on a loopback port, in a thread; a context manager."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rules: list[Rule] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def fail(self, method: str, key: str, fault: str, *, times: int | None = 1) -> Rule:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}: one of {', '.join(FAULTS)}")
        rule = Rule(method.upper(), key, fault, times)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def fault_for(self, method: str, key: str) -> str | None:
        """The fault to answer this request with (counted), or None to forward it."""
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, key):
                    rule.served += 1
                    return rule.fault
        return None


def _handler(proxy: S3Proxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as S3 does: the client reuses connections

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: pytest shows what the tests assert

        def do_GET(self) -> None:
            self._handle()

        do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

        def _handle(self) -> None:
            body = self._body()
            path = urlsplit(self.path).path
            key = unquote(path.lstrip("/").partition("/")[2])  # path-style: /bucket/key
            fault = proxy.fault_for(self.command, key)
            if fault == "drop":
                self.close_connection = True  # no answer at all: the client sees EOF
                return
            if fault is not None:
                self._error(*FAULTS[fault])
                return
            self._forward(body)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _error(self, status: int, code: str, message: str) -> None:
            xml = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
            self.send_response_only(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(xml)))
            self.end_headers()
            if self.command != "HEAD":  # a HEAD's answer has no body: botocore sees the status
                self.wfile.write(xml)

        def _forward(self, body: bytes) -> None:
            upstream = http.client.HTTPConnection(*proxy.upstream, timeout=30)
            try:
                upstream.putrequest(
                    self.command, self.path, skip_host=True, skip_accept_encoding=True
                )
                for name, value in self.headers.items():
                    if name.lower() not in _HOP_BY_HOP:
                        upstream.putheader(name, value)
                upstream.putheader("Content-Length", str(len(body)))
                upstream.endheaders(body)
                answer = upstream.getresponse()
                payload = answer.read()
                self.send_response_only(answer.status, answer.reason)
                for name, value in answer.getheaders():
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                length = answer.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
            finally:
                upstream.close()

    return Handler
