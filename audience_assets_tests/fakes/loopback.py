"""Plumbing both fake APIs share: a threaded HTTP server on 127.0.0.1 that starts and stops fast."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LoopbackHandler(BaseHTTPRequestHandler):
    """Keep-alive handler that hands every request to ``server.fake._handle(self)``."""

    protocol_version = "HTTP/1.1"  # keep-alive, as httpx and requests pool connections
    timeout = 10  # idle keep-alive connections are dropped after this

    def setup(self) -> None:
        super().setup()
        # One small write for headers, one for the body: without this, Nagle + delayed ACK cost ~40 ms each.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.fake._conns.add(self.connection)  # type: ignore[attr-defined]

    def finish(self) -> None:
        self.server.fake._conns.discard(self.connection)  # type: ignore[attr-defined]
        try:
            super().finish()
        except OSError:
            pass  # the client hung up first: nothing left to flush

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the access log
        pass

    def do_GET(self) -> None:
        self.server.fake._handle(self)  # type: ignore[attr-defined]

    do_POST = do_GET
    do_DELETE = do_GET
    do_PUT = do_GET
    do_PATCH = do_GET

    def read_body(self) -> bytes:
        """The request body, plain or chunked."""
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""


class LoopbackServer:
    """Start/stop and context-manager life cycle; a subclass answers each request in ``_handle(handler)``."""

    thread_name = "fake-api"

    def __init__(self) -> None:
        self.base_url = ""
        self._conns: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _before_close(self) -> None:
        """Hook: wake anything waiting inside a handler before the server stops."""

    def start(self):  # noqa: ANN201 - returns the subclass instance
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", 0), LoopbackHandler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self.base_url = f"http://127.0.0.1:{server.server_address[1]}"
        # A short poll interval: the default 0.5 s would be added to every test's teardown.
        self._thread = threading.Thread(target=server.serve_forever, args=(0.02,), name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is None:
            return
        self._before_close()
        self._server.shutdown()
        self._server.server_close()
        for conn in list(self._conns):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the client
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self):  # noqa: ANN204
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
