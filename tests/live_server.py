"""Serve ASGI apps under uvicorn on loopback ports in background threads, for tests over real HTTP."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import uvicorn


def reserve_socket(host: str = "127.0.0.1") -> socket.socket:
    """Bind a listening socket on a free port so the URL is known before the app is built."""
    # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only when the listening
    # socket says TCP, and without it every keep-alive response stalled ~40 ms (Nagle + delayed ACK).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    return sock


def url_of(sock: socket.socket, url_host: str | None = None) -> str:
    """The base URL a client uses to reach a reserved socket."""
    host, port = sock.getsockname()[:2]
    return f"http://{url_host or host}:{port}"


@contextlib.contextmanager
def serve_on(sock: socket.socket, app: object) -> Iterator[None]:
    """Serve `app` on an already reserved socket until the block ends."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"test server on {sock.getsockname()} did not start")
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextlib.contextmanager
def serve(app_factory: Callable[[str], object], host: str = "127.0.0.1",
          url_host: str | None = None) -> Iterator[str]:
    """Build the app with its own base URL, serve it, yield the base URL, stop it on exit."""
    sock = reserve_socket(host)
    base_url = url_of(sock, url_host)
    with serve_on(sock, app_factory(base_url)):
        yield base_url
