"""Serving an app with uvicorn: loopback by default, a graceful shutdown, one access log."""

from __future__ import annotations

import logging
import math
import socket

import uvicorn
from starlette.applications import Starlette


def listening_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (`port=0` picks a free one).

    Made with an explicit `IPPROTO_TCP`, so that asyncio sets `TCP_NODELAY` on accepted
    connections (without it a reply written in two parts stalls on Nagle and delayed ACKs).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def run_server(
    app: Starlette,
    sock: socket.socket,
    *,
    shutdown_grace: float = 30.0,
    log_level: str = "info",
) -> None:
    """Serve `app` on `sock` until SIGINT/SIGTERM.

    On shutdown the socket closes (new connections are refused) and in-flight requests get
    `shutdown_grace` seconds to finish before they are cancelled. Requests are logged by the
    app's access log (`langchain_fusion.serve.access`), not uvicorn's.
    """
    logging.getLogger("langchain_fusion.serve").setLevel(log_level.upper())
    config = uvicorn.Config(
        app,
        loop="asyncio",
        http="h11",
        ws="none",
        lifespan="on",
        log_level=log_level,
        access_log=False,
        log_config=None,  # the caller's logging (`fusion serve` sets it up) stays as it is
        timeout_graceful_shutdown=math.ceil(shutdown_grace) if shutdown_grace else None,
        timeout_keep_alive=30,
        server_header=False,
    )
    uvicorn.Server(config).run(sockets=[sock])
