"""Plain ASGI middleware of the service (no per-request task or copy): request metrics and body limits.

:class:`BodyLimitMiddleware` counts a request's body as it streams in and refuses it with 413 the moment it
passes the limit of its path: a declared ``Content-Length`` over the limit is refused before a byte is read,
and nothing buffers the body on the way (a multipart upload is spooled to a temporary file by the form parser,
so memory stays bounded whatever the client sends).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, MutableMapping
from typing import Any

import numpy as np
from fastapi import HTTPException
from fastapi.responses import JSONResponse

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LATENCY_WINDOW = 10_000  # latencies kept per endpoint for the percentiles
OTHER_ENDPOINT = "(other)"  # every path outside the known routes, so that fuzzed paths add no entries


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The body every refusal has: ``{"error": message, "status": code}``."""
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


class RequestMetrics:
    """Per-endpoint request counts by status class and a window of recent latencies."""

    def __init__(self) -> None:
        self.counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self.latencies: dict[str, collections.deque[float]] = collections.defaultdict(
            lambda: collections.deque(maxlen=LATENCY_WINDOW))

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.counts[endpoint]["requests"] += 1
        self.counts[endpoint][f"{status // 100}xx"] += 1
        self.latencies[endpoint].append(seconds * 1000.0)

    def summary(self) -> dict[str, Any]:
        endpoints = {}
        for endpoint in sorted(self.counts):
            window = np.fromiter(self.latencies[endpoint], dtype=np.float64)
            p50, p95, p99 = np.percentile(window, [50, 95, 99]) if len(window) else (0.0, 0.0, 0.0)
            endpoints[endpoint] = {**dict(sorted(self.counts[endpoint].items())), "p50_ms": round(float(p50), 3),
                                   "p95_ms": round(float(p95), 3), "p99_ms": round(float(p99), 3),
                                   "window": len(window)}
        return {"endpoints": endpoints, "latency_window": LATENCY_WINDOW}


def endpoint_name(path: str, known: Collection[str]) -> str:
    """``/images/x/y`` -> ``/images``: one entry per route whatever ids the path holds; unknown paths share one."""
    head = "/" + path.strip("/").split("/", 1)[0]
    if head == "/ab":
        head = "/ab/report"
    return head if head in known else OTHER_ENDPOINT


class MetricsMiddleware:
    """Counts every HTTP request in ``metrics`` under its endpoint (one of ``endpoints``, else ``(other)``)."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics, endpoints: Collection[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.endpoints = frozenset(endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.metrics.observe(endpoint_name(scope["path"], self.endpoints), status, time.perf_counter() - start)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes its limit; the app's HTTP error handler answers 413.

    FastAPI's own HTTPException, because FastAPI turns any other exception from reading a JSON body into a 400.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body too large: over {limit} bytes; at most {limit} are accepted here")


class BodyLimitMiddleware:
    """Refuses (413) a request body over the limit of its path, counting bytes as they stream in.

    Args:
        app: the wrapped app.
        limits: byte limit by exact path.
        default: byte limit of every other path.
    """

    def __init__(self, app: ASGIApp, limits: Mapping[str, int], default: int) -> None:
        self.app = app
        self.limits = dict(limits)
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and not declared.isdigit():
            await send_json(send, 400, "invalid Content-Length header: expected a number of bytes")
            return
        if declared is not None and int(declared) > limit:
            await send_json(send, 413, f"request body too large: {int(declared)} bytes; "
                                       f"at most {limit} are accepted here")
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)


async def send_json(send: Send, status: int, message: str) -> None:
    response = error_response(status, message)
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
