"""Running the app under uvicorn: its event loop, its request-head cap, and a heap that startup leaves out of
the garbage collector's way.

uvicorn runs on uvloop (libuv) when it is installed, a dependency of modalrec where the platform has it, which
costs the server less CPU per request than asyncio's own loop. HTTP is parsed by h11 with the request line plus
headers capped at :data:`MAX_REQUEST_HEAD_BYTES`. (httptools would parse for less CPU, but it refuses any
request target over 64 KiB with a plain-text 400, shorter than the longest query the spec allows.)

The loaded service (models, catalogue, indexes, the web framework's routes) is a few hundred thousand
long-lived Python objects, none of which will ever be garbage. Requests leave little behind, so full
collections are rare, but one would walk all of them while every request waits; :func:`run_app` collects
once and freezes them (:func:`gc.freeze`) before the first request, so collections see only what requests
allocate.

With ``MODALREC_STALL_LOG`` set to a file, :func:`run_app` also starts the event-loop watchdog of
:mod:`modalrec.serve.watchdog` on uvicorn's loop, which logs every stall of the loop over 50 ms.
"""

from __future__ import annotations

import gc
import os
from typing import Any

MAX_REQUEST_HEAD_BYTES = 256 << 10
"""h11's cap on a request line plus headers; 16 KiB by default in uvicorn, too small for the longest query the
spec allows once percent-encoded (up to 12 bytes a character), which uvicorn would refuse in plain text."""


def uvicorn_options() -> dict[str, Any]:
    """How :func:`run_app` runs uvicorn: h11 with the head cap, uvloop when installed (uvicorn's ``auto``)."""
    return {"http": "h11", "loop": "auto", "h11_max_incomplete_event_size": MAX_REQUEST_HEAD_BYTES}


def run_app(app: Any, host: str, port: int, *, access_log: bool) -> None:
    """Serve ``app`` with uvicorn until interrupted, the heap frozen first (see the module's docstring)."""
    import uvicorn

    gc.collect()
    gc.freeze()
    uvicorn.run(with_stall_watchdog(app), host=host, port=port, access_log=access_log, log_level="info",
                **uvicorn_options())


def with_stall_watchdog(app: Any) -> Any:
    """``app``, with :func:`modalrec.serve.watchdog.start_from_environment` watching the serving loop from
    startup to shutdown (the ASGI lifespan, which uvicorn runs on the loop the requests run on). Without
    :data:`~modalrec.serve.watchdog.STALL_LOG_ENV` it is ``app`` itself, so requests pay for no extra layer."""
    from modalrec.serve.watchdog import STALL_LOG_ENV, start_from_environment

    if not os.environ.get(STALL_LOG_ENV, "").strip():
        return app

    async def watched(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        watchdog = start_from_environment("server")
        try:
            await app(scope, receive, send)
        finally:
            if watchdog is not None:
                watchdog.stop()

    return watched
