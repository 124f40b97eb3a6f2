"""The recommendation service: trained runs behind a FastAPI app, with A/B routing and a web page.

The service itself is plain Python (:mod:`modalrec.serve.service`: :func:`load_service` reads one run, or
two for an A/B test, into a :class:`Service`); :func:`create_app` wraps it in HTTP endpoints (OpenAPI docs
at ``/docs``), and :mod:`modalrec.serve.forms` reads the form of ``POST /items``:

==========================  ========================================================================
``GET /recommend``          ``user``, ``k`` (1..MAX_K), ``exclude_seen`` (default true), ``items`` (seed
                            ids for unknown users): top-k items with scores; ``source`` says ``model``,
                            ``popular`` (unknown user: training counts) or ``items`` (unknown user: the
                            mean vector of the given items)
``GET /similar``            ``item``, ``k``: nearest items by cosine of the model's item vectors
``GET /history``            ``user``: the user's training items
``GET /users``              user ids, for the page's picker
``POST /items``             a new item from content (multipart form); recommendable at once, persisted
``POST /feedback``          one event or a list: ``{user, item, event, timestamp}``; stored durably with the arm
``GET /ab/report``          per-arm users, impressions, clicks, CTR with 95% CI, lift, z-test p-value
``GET /health``             arms, models, catalogue size, index kind
``GET /metrics``            request counts and latency percentiles per endpoint
``GET /images/{item}``      the item's picture, from the dataset's content folder only
``GET /``                   the web page (``modalrec/serve/static``)
==========================  ========================================================================

Every refused request gets a 4xx JSON body ``{"error": message, "status": code}``. A plain ``/recommend``
query (``user`` and ``k``, valid, each once) is answered with the route's very response by
:mod:`modalrec.serve.shortcut`, without FastAPI's per-request parameter work; every other goes to the route.

Security: the service binds to 127.0.0.1 unless ``--host`` says otherwise. Writes (``POST /items``,
``POST /feedback``) from another origin or for another ``Host`` are refused, and need the token when one is
set (``Authorization: Bearer``; reads too with ``--protect-reads``); see :mod:`modalrec.serve.auth`. It
reads pictures only from the dataset's content folder (symbolic links resolved) and the run's uploads, and
writes only inside the first run's folder (new items, their pictures under names hashed from the id, and the
feedback database unless ``--db`` names another). Bodies are capped while they stream in (1 MiB of JSON;
``POST /items`` the picture cap, 8 MiB by default, plus 1 MiB of form), and an upload must be a real picture of
a readable format. ``tests/serve/test_fuzz.py`` fuzzes every operation against this spec.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Body, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from modalrec.errors import ModalrecError, WriteError
from modalrec.serve.ab import ab_report, format_report
from modalrec.serve.auth import AccessMiddleware, AccessPolicy, page_response
from modalrec.serve.forms import file_fields, read_new_item, text_fields
from modalrec.serve.items import MAX_ITEM_ID_LENGTH, ServiceError
from modalrec.serve.middleware import BodyLimitMiddleware, MetricsMiddleware, RequestMetrics, error_response
from modalrec.serve.schemas import (
    MAX_ID_CHARS,
    MAX_PATH_CHARS,
    ABReportOut,
    ErrorOut,
    FeedbackIn,
    FeedbackOut,
    HealthOut,
    HistoryOut,
    MetricsOut,
    NewItemOut,
    RecommendOut,
    SimilarOut,
    UsersOut,
    new_item_form,
)
from modalrec.serve.service import MAX_K, Service
from modalrec.serve.shortcut import RecommendShortcut

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
"""The service binds to this machine only unless told otherwise (``--host``)."""
MAX_SEED_ITEMS = 100
MAX_BODY_BYTES = 1 << 20  # JSON bodies
FORM_OVERHEAD_BYTES = 1 << 20  # what a POST /items body may hold besides the picture (text fields, boundaries)
MAX_FEEDBACK_EVENTS = 1000
MAX_SEED_CHARS = 8000  # the `items` query of /recommend
STATIC_DIR = Path(__file__).parent / "static"
ENDPOINTS = ("/recommend", "/similar", "/history", "/users", "/feedback", "/items", "/ab/report", "/health",
             "/metrics", "/images", "/", "/static", "/docs", "/openapi.json")
"""The paths /metrics counts by name; every other path is counted as ``(other)``."""

ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (400, 404, 409, 413, 415, 422)}
PICTURE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp", "image/tiff")
SEED_ITEMS_PATTERN = rf"^[^,]*(,[^,]*){{0,{MAX_SEED_ITEMS - 1}}}$"
PATTERN_MESSAGES = {"items": f"at most {MAX_SEED_ITEMS} comma-separated ids",
                    "item_id": "no control characters"}


def create_app(service: Service, access: AccessPolicy | None = None) -> FastAPI:
    """The FastAPI app serving ``service``; its docs page (``/docs``) needs no network. ``access`` says which
    requests need the token and which hosts and origins are refused (:mod:`modalrec.serve.auth`); by default
    writes need no token but are refused from other origins."""
    access = access or AccessPolicy()
    app = FastAPI(title="modalrec", version="1", description=__doc__, responses=ERRORS, docs_url=None,
                  redoc_url=None)
    metrics = RequestMetrics()
    app.state.metrics = metrics
    _add_error_handlers(app)
    _add_read_routes(app, service)
    _add_write_routes(app, service)
    _add_status_routes(app, service, metrics)
    _add_page_routes(app, service, access)
    limit = service.settings.max_upload_bytes
    app.add_middleware(RecommendShortcut, service=service)  # innermost: after the access checks and metrics
    app.add_middleware(BodyLimitMiddleware, limits={"/items": limit + FORM_OVERHEAD_BYTES}, default=MAX_BODY_BYTES)
    app.add_middleware(AccessMiddleware, policy=access)  # before the body is read, after CORS preflights
    if access.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(access.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(MetricsMiddleware, metrics=metrics, endpoints=ENDPOINTS)
    _document_examples(app, service)
    return app


def _document_examples(app: FastAPI, service: Service) -> None:
    """Give the spec's id parameters and the feedback body examples from the served catalogue (real ids, so
    that readers of /docs, and fuzzers, can reach the answers beyond 404)."""
    build = app.openapi
    user = next(iter(service.arms.values())).run.dataset.user_ids.external
    ids = {"user": str(user[0]) if len(user) else "u1",
           "item": service.catalogue.ids[0] if len(service.catalogue) else "i1"}
    ids |= {"item_id": ids["item"], "items": ",".join(service.catalogue.ids[:2])}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = build()
        for operation in (op for methods in spec["paths"].values() for op in methods.values()):
            for parameter in operation.get("parameters", []):
                if parameter["name"] in ids:
                    parameter["example"] = ids[parameter["name"]]
        body = spec["paths"]["/feedback"]["post"]["requestBody"]["content"]["application/json"]
        body["example"] = {"user": ids["user"], "item": ids["item"], "event": "click"}
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def refused(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(ModalrecError)
    async def library_error(request: Request, exc: ModalrecError) -> JSONResponse:
        return error_response(400, str(exc))

    @app.exception_handler(WriteError)
    async def write_error(request: Request, exc: WriteError) -> JSONResponse:  # full disk: the server's fault
        return error_response(503, str(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}")


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            parts.append(f"request body: invalid JSON ({error.get('ctx', {}).get('error', 'cannot be parsed')})")
            continue
        location = [str(p) for p in error.get("loc", ()) if p not in ("query", "body", "path")]
        where = ".".join(location)
        message = str(error.get("msg", "invalid"))
        if error.get("type") == "string_pattern_mismatch" and location and location[-1] in PATTERN_MESSAGES:
            message = PATTERN_MESSAGES[location[-1]]
        given = error.get("input")
        found = f" (got {given!r})" if isinstance(given, (str, int, float)) and len(repr(given)) < 80 else ""
        parts.append(f"{where or 'request'}: {message}{found}")
    return "; ".join(parts) or "invalid request"


KParam = Annotated[int, Query(ge=1, le=MAX_K, description=f"number of items, 1 to {MAX_K}")]
IdParam = Annotated[str, Query(min_length=1, max_length=MAX_ID_CHARS)]


def _add_read_routes(app: FastAPI, service: Service) -> None:
    @app.get("/recommend", response_model=RecommendOut, tags=["recommend"])
    async def recommend(user: IdParam, k: KParam, exclude_seen: bool = True,
                        items: Annotated[str | None, Query(max_length=MAX_SEED_CHARS, pattern=SEED_ITEMS_PATTERN, description=(
                            "comma-separated item ids; for a user the model does not know, recommend from the mean "
                            f"of their vectors (at most {MAX_SEED_ITEMS})"))] = None) -> JSONResponse:
        """Top-k items for a user. A user unknown to the model gets the popular items, or the items nearest to
        the mean vector of ``items`` when given; ``source`` says which."""
        seeds = [i.strip() for i in items.split(",") if i.strip()] if items else None
        return JSONResponse(service.recommend(user, k, exclude_seen=exclude_seen, seed_items=seeds))

    @app.get("/similar", response_model=SimilarOut, tags=["recommend"])
    async def similar(item: IdParam, k: KParam,
                      user: Annotated[str | None, Query(max_length=MAX_ID_CHARS,
                                                        description="routes to the user's arm")] = None,
                      ) -> JSONResponse:
        """The k items nearest to ``item`` by the cosine of the model's item vectors."""
        return JSONResponse(service.similar(item, k, user))

    @app.get("/history", response_model=HistoryOut, tags=["recommend"])
    def history(user: IdParam, limit: Annotated[int, Query(ge=1, le=MAX_K)] = 50) -> JSONResponse:
        """The user's training items (the first ``limit``)."""
        return JSONResponse(service.history(user, limit))

    @app.get("/users", response_model=UsersOut, tags=["recommend"])
    def users(prefix: Annotated[str, Query(max_length=MAX_ID_CHARS)] = "",
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> JSONResponse:
        """User ids (those starting with ``prefix``), for pickers."""
        return JSONResponse({"users": service.users(prefix, limit)})


def _add_write_routes(app: FastAPI, service: Service) -> None:
    @app.post("/feedback", status_code=201, response_model=FeedbackOut, tags=["feedback"])
    async def feedback(events: Annotated[FeedbackIn | Annotated[list[FeedbackIn],
                                                                Field(min_length=1, max_length=MAX_FEEDBACK_EVENTS)],
                                         Body()]) -> JSONResponse:
        """Store one event or a list (all or none); it is on disk when the answer comes."""
        batch = events if isinstance(events, list) else [events]
        await asyncio.wrap_future(service.submit_feedback([e.model_dump() for e in batch]))
        return JSONResponse({"stored": len(batch)}, status_code=201)

    form = new_item_form(text_fields(service), file_fields(service), MAX_ITEM_ID_LENGTH)

    @app.post("/items", status_code=201, response_model=NewItemOut, tags=["items"],
              responses={403: {"model": ErrorOut, "description": "a content path outside the allowed folders"}},
              openapi_extra={"requestBody": form})
    async def add_item(request: Request) -> JSONResponse:
        """Add an item from its content (a multipart form): ``item_id``, the dataset's text columns (such as
        ``title``), and a picture as an ``image`` upload or an ``image_path`` inside an allowed folder. The item
        is embedded by the model's content path and recommendable at once.

        An upload must be a PNG, JPEG, WebP, GIF or BMP picture (its bytes are checked, not only its declared
        type) of at most the service's upload limit (8 MiB unless ``--max-upload-mb`` says otherwise)."""
        content = await read_new_item(request, service)
        try:
            answer = await run_in_threadpool(service.add_item, content)
        except BaseException:
            for path in content.files.values():
                if path.is_relative_to(service.new_items.images.resolve()):
                    path.unlink(missing_ok=True)
            raise
        return JSONResponse(answer, status_code=201)


def _add_status_routes(app: FastAPI, service: Service, metrics: RequestMetrics) -> None:
    @app.get("/health", response_model=HealthOut, tags=["status"])
    def health() -> JSONResponse:
        """Arms, models, catalogue size and index kind."""
        return JSONResponse(service.health())

    @app.get("/metrics", response_model=MetricsOut, tags=["status"])
    def request_metrics() -> JSONResponse:
        """Request counts by status class and latency percentiles (ms) per endpoint, over recent requests."""
        return JSONResponse(metrics.summary())

    @app.get("/ab/report", response_model=ABReportOut, tags=["feedback"],
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "the report as JSON, or as a text table with format=text"}})
    def report(format: Literal["json", "text"] = "json") -> Any:
        """Per-arm users, impressions, clicks, CTR with its 95% Wilson interval, relative lift of B over A and
        the two-proportion z-test p-value."""
        summary = ab_report(service.feedback)
        if format == "text":
            return PlainTextResponse(format_report(summary) + "\n")
        return JSONResponse(summary.to_dict())


def _add_page_routes(app: FastAPI, service: Service, access: AccessPolicy) -> None:
    picture = {"schema": {"type": "string", "format": "binary"}}

    @app.get("/images/{item_id:path}", tags=["page"], response_class=FileResponse,
             responses={200: {"content": {kind: picture for kind in PICTURE_TYPES}, "description": "the picture"}})
    def image(item_id: Annotated[str, PathParam(max_length=MAX_PATH_CHARS)]) -> FileResponse:
        """The item's picture, read only from the dataset's content folder (or the uploads of new items)."""
        # item_id may be empty even for /images/%0A: Starlette's route pattern ends in $, which matches before
        # a final newline; it then names no item like any other unknown id
        item = service.catalogue.index.get(item_id)
        path = None if item is None else service.catalogue.picture_file(item)
        media = mimetypes.guess_type(path.name)[0] if path is not None else None
        if path is None or media not in PICTURE_TYPES:
            raise ServiceError(404, f"no picture for item '{item_id}'")
        return FileResponse(path, media_type=media, headers={"X-Content-Type-Options": "nosniff",
                                                              "Cache-Control": "max-age=3600"})

    @app.get("/", include_in_schema=False)
    def page(request: Request) -> Response:
        return page_response(access, STATIC_DIR / "index.html", request)

    @app.get("/docs", include_in_schema=False)
    def docs() -> FileResponse:
        return FileResponse(STATIC_DIR / "docs.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def serve(service: Service, host: str = DEFAULT_HOST, port: int = 8000, *, access_log: bool = False,
          access: AccessPolicy | None = None) -> None:
    """Run the app with uvicorn until interrupted (:func:`modalrec.serve.server.run_app`)."""
    from modalrec.serve.server import run_app

    log.info("serving %s on http://%s:%d (docs at /docs)", ", ".join(
        f"{a.name}={a.model_name}" for a in service.arms.values()), host, port)
    run_app(create_app(service, access), host, port, access_log=access_log)
