"""Running the app with uvicorn: one process, one event loop, one model worker thread.

Why one process: uvicorn's ``--workers N`` starts N processes, and each would load its own copy of the backbone;
the point of this server is that every task shares one. The CPU cores go to torch inside each forward
(``threads``, i.e. ``torch.set_num_threads``); on a GPU the batch is the parallelism. For more throughput
than one model gives, start one server per GPU (or per machine) behind a load balancer.
"""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI


def make_server(
    app: FastAPI,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    graceful_timeout: float | None = 30.0,
    log_level: str = "info",
) -> uvicorn.Server:
    """A uvicorn server for `app` (``port=0`` picks a free port: see `bound_port` once it has started).

    graceful_timeout: seconds a shutdown waits for the requests in flight before closing their connections.
    """
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, workers=1, timeout_graceful_shutdown=graceful_timeout,
    )  # fmt: skip
    return uvicorn.Server(config)


def bound_port(server: uvicorn.Server) -> int:
    """The port a started server listens on (the one the OS chose for ``port=0``)."""
    return server.servers[0].sockets[0].getsockname()[1]
