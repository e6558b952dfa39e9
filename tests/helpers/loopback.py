"""Loopback servers for the tests (127.0.0.1 only): HTTP servers for the download tests, a free port."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def serving(httpd: http.server.HTTPServer) -> Iterator[str]:
    """`httpd` answering on a thread of its own while the block runs: yields its base URL. Its loop checks for the
    stop every 10 ms (the default, half a second, is what each test would wait at the end)."""
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
