"""Serving the explorer: the Host check (no DNS rebinding), the listening socket, uvicorn in a thread."""

from __future__ import annotations

import socket
import threading
import time

from starlette.responses import JSONResponse

from cnnscope.app.explorer.hosts import host_name
from cnnscope.errors import UserError


class HostCheck:
    """ASGI middleware: answer 400 unless the Host header names one of `hosts`.

    A page on another site cannot read this server's answers (same-origin policy) unless it
    rebinds its own domain name to 127.0.0.1 ("DNS rebinding"); its requests then carry its
    own name in the Host header, and this check refuses them.
    """

    def __init__(self, app, hosts):
        self.app = app
        self.hosts = {h.lower() for h in hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            header = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if host_name(header) not in self.hosts:
                response = JSONResponse({"error": f"host {header!r} is not allowed; use http://127.0.0.1"}, 400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A bound TCP socket for uvicorn (`server.run(sockets=[...])`); port 0 picks a free one.

    Created with IPPROTO_TCP: asyncio turns on TCP_NODELAY only for such sockets, and without
    it every small answer waits ~40 ms for the client's delayed ACK.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


class ServerThread:
    """The app served by uvicorn in a background thread (tests, benchmarks): `with ServerThread(app) as url:`."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.sock = bind_socket(host, port)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the explorer server did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()
