"""GET /recommend without the web framework's per-request work, for the plain queries that make up the load.

FastAPI resolves and validates every declared parameter of a route on each request, a good share of the CPU
a /recommend answer costs. :class:`RecommendShortcut` answers the plain form of the request, ``user`` and ``k``
(and ``exclude_seen=true`` or ``false``), each given once and valid, straight from the service, with the very
response the route gives (same body, same headers). Anything else, every query the route would refuse
included, goes on to the route, so the route's validation and error messages stay the only ones. It sits
inside the access and metrics middleware: tokens, hosts and request counts apply to it as to any request.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse

from modalrec.errors import ModalrecError
from modalrec.serve.items import ServiceError
from modalrec.serve.middleware import ASGIApp, Receive, Scope, Send
from modalrec.serve.schemas import MAX_ID_CHARS
from modalrec.serve.service import MAX_K, Service

PATH = "/recommend"
KEYS = frozenset({"user", "k", "exclude_seen"})
BOOLEANS = {"true": True, "false": False}


def plain_recommend_query(query: bytes) -> tuple[str, int, bool] | None:
    """``(user, k, exclude_seen)`` when the query string holds a valid ``user`` and ``k``, and at most
    ``exclude_seen=true|false``, each once; None for anything else (left to the route to answer or refuse).

    Parsed as Starlette parses queries, so the user id is the one the route would see."""
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    values = dict(pairs)
    if len(values) != len(pairs) or not {"user", "k"} <= values.keys() <= KEYS:
        return None
    user, k, exclude_seen = values["user"], values["k"], values.get("exclude_seen", "true")
    if not 1 <= len(user) <= MAX_ID_CHARS or exclude_seen not in BOOLEANS:
        return None
    if not (k.isascii() and k.isdigit()) or k.startswith("0") or len(k) > len(str(MAX_K)) or int(k) > MAX_K:
        return None
    return user, int(k), BOOLEANS[exclude_seen]


class RecommendShortcut:
    """Answers plain ``GET /recommend`` queries (:func:`plain_recommend_query`) from ``service``; passes every
    other request, and any the service refuses, to ``app``."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "GET":
            query = plain_recommend_query(scope.get("query_string", b""))
            if query is not None:
                user, k, exclude_seen = query
                try:
                    answer = self.service.recommend(user, k, exclude_seen=exclude_seen)
                except (ServiceError, ModalrecError):
                    pass  # the route refuses it with its own handlers
                else:
                    await JSONResponse(answer)(scope, receive, send)
                    return
        await self.app(scope, receive, send)
