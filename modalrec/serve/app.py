"""The recommendation service: trained runs behind a FastAPI app, with A/B routing and a web page.

:func:`load_service` reads one run (or two, for an A/B test) into a :class:`Service`; :func:`create_app`
wraps it in HTTP endpoints (OpenAPI docs at ``/docs``):

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

Every refused request gets a 4xx JSON body ``{"error": message, "status": code}``.

Security: the service binds to 127.0.0.1 unless ``--host`` says otherwise and has no authentication. It
reads pictures only from the dataset's content folder (symbolic links resolved) and the run's uploads, and
writes only inside the first run's folder (new items, their pictures under names hashed from the id, and the
feedback database unless ``--db`` names another). Bodies are capped while they stream in (1 MiB of JSON;
``POST /items`` the picture cap, 8 MiB by default, plus 1 MiB of form), and an upload must be a real picture of
a readable format. ``tests/serve/test_fuzz.py`` fuzzes every operation against this spec.
"""

from __future__ import annotations

import logging
import mimetypes
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from fastapi import Body, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from modalrec.errors import ConfigError, ModalrecError, WriteError
from modalrec.evaluate.evaluator import top_k_deterministic
from modalrec.models.base import Recommender
from modalrec.models.registry import capabilities_of
from modalrec.serve.ab import DEFAULT_SALT, Router, ab_report, format_report
from modalrec.serve.feedback import FEEDBACK_FILE, FeedbackEvent, FeedbackStore
from modalrec.serve.index import IndexConfig, Neighbours, VectorIndex
from modalrec.serve.items import (
    MAX_ITEM_ID_LENGTH,
    Catalogue,
    ContentEmbedder,
    NewItemContent,
    NewItemStore,
    ServiceError,
    check_item_id,
    image_path_inside,
    read_content_source,
    save_upload,
    stored_item,
)
from modalrec.serve.middleware import BodyLimitMiddleware, MetricsMiddleware, RequestMetrics, error_response
from modalrec.serve.schemas import (
    MAX_ID_CHARS,
    MAX_PATH_CHARS,
    MAX_TEXT_CHARS,
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
    Source,
    UsersOut,
    new_item_form,
)
from modalrec.train.run import LoadedRun, load_run

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
"""The service binds to this machine only unless told otherwise (``--host``)."""
MAX_K = 500
"""Largest ``k`` /recommend and /similar accept."""
MAX_SEED_ITEMS = 100
MAX_BODY_BYTES = 1 << 20  # JSON bodies
MAX_UPLOAD_BYTES = 8 << 20  # one uploaded picture, unless ServiceSettings.max_upload_bytes says otherwise
FORM_OVERHEAD_BYTES = 1 << 20  # what a POST /items body may hold besides the picture (text fields, boundaries)
MAX_FORM_FIELD_BYTES = 64 << 10  # one text field of the POST /items form
MAX_FEEDBACK_EVENTS = 1000
MAX_SEED_CHARS = 8000  # the `items` query of /recommend
MAX_REQUEST_HEAD_BYTES = 256 << 10
"""uvicorn's (h11's) cap on a request line plus headers; 16 KiB by default, too small for the longest query the
spec allows once percent-encoded (up to 12 bytes a character), which uvicorn would refuse in plain text."""
STATIC_DIR = Path(__file__).parent / "static"
INDEX_CACHE_DIR = "serve_index"
ENDPOINTS = ("/recommend", "/similar", "/history", "/users", "/feedback", "/items", "/ab/report", "/health",
             "/metrics", "/images", "/", "/static", "/docs", "/openapi.json")
"""The paths /metrics counts by name; every other path is counted as ``(other)``."""


@dataclass(frozen=True)
class ServiceSettings:
    """How runs are served."""

    index: IndexConfig = field(default_factory=IndexConfig)
    split_b: float = 50.0  # percent of users routed to arm B when two runs are served
    salt: str = DEFAULT_SALT  # experiment salt of the routing hash
    db: Path | None = None  # feedback database; None = feedback.sqlite in the first run's folder
    image_roots: tuple[Path, ...] = ()  # further folders POST /items may read pictures from
    device: str = "cpu"
    max_upload_bytes: int = MAX_UPLOAD_BYTES  # largest picture POST /items accepts (413 beyond)

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1:
            raise ConfigError("max_upload_bytes", f"expected a positive number of bytes, got {self.max_upload_bytes}")


# ---------------------------------------------------------------------------------------------
# One served run

class ServedArm:
    """A trained run ready to answer: user and item vectors, their indexes, seen items, popularity."""

    def __init__(self, name: str, run_dir: Path, run: LoadedRun, index: IndexConfig) -> None:
        self.name = name
        self.run_dir = run_dir
        self.run = run
        self.model: Recommender = run.model.eval()
        self.model_name = run.config.model_name
        self.user_index = run.dataset.user_ids.lookup()
        seen = run.split.matrix("train")
        self.seen_indptr, self.seen_items = seen.indptr, seen.indices.astype(np.int64)
        self.popularity = np.bincount(run.split.train.items, minlength=run.split.num_items).astype(np.float32)
        self.popular = np.argsort(-self.popularity, kind="stable")[:MAX_K]
        self.user_vectors: np.ndarray | None = None
        self.item_vectors: np.ndarray | None = None
        self.dot_index: VectorIndex | None = None
        self.cosine_index: VectorIndex | None = None
        self.capabilities = capabilities_of(self.model)
        if not self.capabilities.dot_product:
            log.info("arm %s (%s) scores without vectors: exact scoring, no similar items", name, self.model_name)
            return
        vectors = self.model.embeddings()
        self.user_vectors = vectors.users.detach().cpu().numpy().astype(np.float32)
        self.item_vectors = vectors.items.detach().cpu().numpy().astype(np.float32)
        cache = run_dir / INDEX_CACHE_DIR
        self.dot_index = VectorIndex(self.item_vectors, index, cache_dir=cache)
        self.cosine_index = VectorIndex(self.item_vectors, index, cosine=True, cache_dir=cache)

    @property
    def embeds_content(self) -> bool:
        return self.capabilities.new_items

    def seen(self, user: int) -> np.ndarray:
        return self.seen_items[self.seen_indptr[user]: self.seen_indptr[user + 1]]

    def for_user(self, user: int, k: int, exclude_seen: bool) -> Neighbours:
        excluded = self.seen(user) if exclude_seen else None
        if self.user_vectors is not None and self.dot_index is not None:
            return self.dot_index.search(self.user_vectors[user], k, excluded)
        with torch.no_grad():
            scores = self.model.score(torch.tensor([user], device=self.run.device)).float()
            if excluded is not None and len(excluded):
                scores[0, torch.from_numpy(excluded).to(scores.device)] = -torch.inf
            top = top_k_deterministic(scores, k)[0]
            values = scores[0, top]
        keep = torch.isfinite(values)
        return Neighbours(top[keep].cpu().numpy().astype(np.int64), values[keep].cpu().numpy())

    def for_items(self, items: np.ndarray, k: int) -> Neighbours:
        """Items for the mean vector of ``items`` (a user the model does not know), leaving those out."""
        vectors, index = self._searchable(items, self.dot_index, "it cannot recommend from given items")
        return index.search(vectors.mean(axis=0), k, items)

    def similar(self, item: int, k: int) -> Neighbours:
        vectors, index = self._searchable(np.asarray([item]), self.cosine_index, "similar items need them")
        return index.search(vectors[0], k, np.asarray([item]))

    def _searchable(self, items: np.ndarray, index: VectorIndex | None,
                    purpose: str) -> tuple[np.ndarray, VectorIndex]:
        vectors = self.item_vectors
        if vectors is None or index is None:
            raise ServiceError(409, f"the {self.model_name} model of arm {self.name} has no item vectors; {purpose}")
        if int(items.max()) >= len(vectors):
            raise ServiceError(409, f"arm {self.name} ({self.model_name}) has not embedded item index "
                                    f"{int(items.max())} (added while it could not embed new items)")
        return vectors[items], index

    def content_vectors(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Item vectors from raw content features. Shapes: {modality: (N, F_m)} -> (N, d)."""
        if not self.embeds_content:
            raise ServiceError(409, f"the {self.model_name} model (arm {self.name}) cannot embed new items from "
                                    "content; serve a content model such as vbpr")
        tensors = {m: torch.from_numpy(np.ascontiguousarray(f)) for m, f in features.items()}
        with torch.no_grad():
            return self.model.content_item_vectors(tensors).detach().cpu().numpy().astype(np.float32)

    def add_vectors(self, vectors: np.ndarray) -> None:
        if self.item_vectors is None or self.dot_index is None or self.cosine_index is None:
            return
        self.item_vectors = np.concatenate([self.item_vectors, vectors])
        self.dot_index.add(vectors)
        self.cosine_index.add(vectors)

    def describe(self) -> dict[str, Any]:
        return {"run": str(self.run_dir), "model": self.model_name, "users": len(self.user_index),
                "items": int(self.run.split.num_items),
                "index": self.dot_index.kind if self.dot_index else "exact scoring (no vectors)",
                "embeds_new_items": self.embeds_content}


# ---------------------------------------------------------------------------------------------
# The service

class Service:
    """The arms, the router between them, the shared catalogue, new items and the feedback store."""

    def __init__(self, arms: list[ServedArm], router: Router, settings: ServiceSettings) -> None:
        first = arms[0]
        self.arms = {arm.name: arm for arm in arms}
        self.router = router
        self.settings = settings
        self.started = time.time()
        dataset = first.run.dataset
        source = read_content_source(first.run.config.data_path)
        self.new_items = NewItemStore(first.run_dir)
        self.catalogue = Catalogue(dataset.item_ids.external, source, uploads=self.new_items.images)
        self.embedder = ContentEmbedder(source, dataset.features, settings.device)
        self.picture_roots = tuple(dict.fromkeys((*source.roots, *(r.resolve() for r in settings.image_roots))))
        self.feedback = FeedbackStore(settings.db or first.run_dir / FEEDBACK_FILE)
        self._lock = threading.Lock()
        self._load_new_items()
        self.feedback.set_experiment(self._experiment())

    def _experiment(self) -> dict[str, str]:
        values = {f"arm {a.name}": f"{a.model_name} ({a.run_dir})" for a in self.arms.values()}
        if len(self.arms) > 1:
            values |= {"split": f"{self.router.split_b:g}% of users to B", "salt": self.router.salt}
        return values

    def _load_new_items(self) -> None:
        stored = self.new_items.load(self.embedder.tables)
        clashes = [s.item_id for s in stored if s.item_id in self.catalogue.index]
        if clashes:
            log.warning("%s: %d stored new items are in the dataset now (first: %s); the dataset's are served",
                        self.new_items.path, len(clashes), clashes[0])
            stored = [s for s in stored if s.item_id not in self.catalogue.index]
        if not stored:
            return
        for item in stored:
            self.catalogue.add(item.item_id, item.title, item.picture)
        features = {m: np.stack([s.features[m] for s in stored]) for m in self.embedder.tables}
        for arm in self.arms.values():
            if arm.embeds_content:
                arm.add_vectors(arm.content_vectors(features))
            else:
                log.warning("arm %s (%s) cannot embed the %d stored new items; it will not recommend them",
                            arm.name, arm.model_name, len(stored))

    # -- reading -------------------------------------------------------------------------------

    def arm_for(self, user_id: str) -> ServedArm:
        return self.arms[self.router.arm(user_id)] if len(self.arms) > 1 else next(iter(self.arms.values()))

    def item_indices(self, item_ids: list[str]) -> np.ndarray:
        unknown = [i for i in item_ids if i not in self.catalogue.index]
        if unknown:
            raise ServiceError(404, f"unknown item '{unknown[0]}'")
        return np.asarray([self.catalogue.index[i] for i in item_ids], dtype=np.int64)

    def recommend(self, user_id: str, k: int, *, exclude_seen: bool = True,
                  seed_items: list[str] | None = None) -> dict[str, Any]:
        """Top-k for a user; an unknown user gets the mean of ``seed_items`` or, without them, popular items."""
        arm = self.arm_for(user_id)
        user = arm.user_index.get(user_id)
        source: Source
        if user is not None:
            found, source = arm.for_user(user, k, exclude_seen), "model"
        elif seed_items:
            found, source = arm.for_items(self.item_indices(seed_items), k), "items"
        else:
            top = arm.popular[:k]
            found, source = Neighbours(top, arm.popularity[top]), "popular"
        return {"user": user_id, "arm": arm.name, "model": arm.model_name, "source": source, "k": k,
                "items": self._listing(found)}

    def recommended_ids(self, user_id: str, k: int) -> tuple[str, list[str]]:
        """``(arm, item ids)`` as /recommend answers; for the A/B simulator."""
        answer = self.recommend(user_id, k)
        return answer["arm"], [row["item"] for row in answer["items"]]

    def similar(self, item_id: str, k: int, user_id: str | None = None) -> dict[str, Any]:
        arm = self.arm_for(user_id) if user_id else next(iter(self.arms.values()))
        item = int(self.item_indices([item_id])[0])
        return {"item": item_id, "arm": arm.name, "model": arm.model_name, "k": k,
                "items": self._listing(arm.similar(item, k))}

    def history(self, user_id: str, limit: int) -> dict[str, Any]:
        arm = self.arm_for(user_id)
        user = arm.user_index.get(user_id)
        if user is None:
            raise ServiceError(404, f"unknown user '{user_id}' (not in the training data)")
        seen = arm.seen(user)
        return {"user": user_id, "arm": arm.name, "count": len(seen),
                "items": [self.catalogue.describe(int(i)) for i in seen[:limit]]}

    def users(self, prefix: str, limit: int) -> list[str]:
        arm = next(iter(self.arms.values()))
        ids = arm.run.dataset.user_ids.external
        return [str(u) for u in ids if str(u).startswith(prefix)][:limit] if prefix else [str(u) for u in ids[:limit]]

    def _listing(self, found: Neighbours) -> list[dict[str, Any]]:
        rows = []
        for rank, (item, score) in enumerate(zip(found.ids.tolist(), found.scores.tolist(), strict=True), start=1):
            rows.append({**self.catalogue.describe(item), "score": score, "rank": rank})
        return rows

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "uptime_s": round(time.time() - self.started, 1),
                "arms": {name: arm.describe() for name, arm in self.arms.items()},
                "split_b": self.router.split_b if len(self.arms) > 1 else None,
                "items": len(self.catalogue), "new_items": len(self.catalogue) - self.catalogue.num_base,
                "feedback_db": str(self.feedback.path), "max_k": MAX_K}

    # -- writing -------------------------------------------------------------------------------

    def record(self, events: list[dict[str, Any]]) -> int:
        """Store feedback events (``user``, ``item``, ``event``, optional ``timestamp``) with each user's arm."""
        self.item_indices([e["item"] for e in events])
        now = time.time()
        self.feedback.append([
            FeedbackEvent(e["user"], e["item"], e["event"], now if e.get("timestamp") is None else e["timestamp"],
                          self.router.arm(e["user"]) if len(self.arms) > 1 else "A")
            for e in events
        ])
        return len(events)

    def check_can_add_items(self) -> None:
        """Raise 409 unless the dataset names its extractors and every arm's model embeds content."""
        for arm in self.arms.values():
            if not arm.embeds_content:
                raise ServiceError(409, f"the {arm.model_name} model (arm {arm.name}) cannot embed new items "
                                        "from content; serve a content model such as vbpr")
        self.embedder.check_available()

    def add_item(self, content: NewItemContent) -> dict[str, Any]:
        """Embed a new item from its content with every arm's model, persist it and make it searchable."""
        self.check_can_add_items()
        features, how = self.embedder.features(content)
        vectors = {name: arm.content_vectors(features) for name, arm in self.arms.items()}
        with self._lock:
            check_item_id(content.item_id, self.catalogue)
            item = stored_item(content, features)
            self.new_items.append(item)
            index = self.catalogue.add(item.item_id, item.title, item.picture)  # before any index can return it
            for name, arm in self.arms.items():
                arm.add_vectors(vectors[name])
        return {**self.catalogue.describe(index), "modalities": how, "items": len(self.catalogue)}


def load_service(run_dirs: list[Path], settings: ServiceSettings = ServiceSettings()) -> Service:
    """Load one run (every user on arm A) or two (users split between arms A and B by ``settings``)."""
    if not 1 <= len(run_dirs) <= 2:
        raise ConfigError("--run", f"expected one run, or two for an A/B test, got {len(run_dirs)}")
    arms = [ServedArm(name, Path(run_dir), load_run(run_dir, device=settings.device), settings.index)
            for name, run_dir in zip("AB", run_dirs)]
    if len(arms) == 2:
        first, second = (arm.run.dataset.item_ids.external for arm in arms)
        if len(first) != len(second) or not np.array_equal(first, second):
            raise ConfigError("--run-b", f"{run_dirs[1]} serves another catalogue than {run_dirs[0]} "
                                         f"({len(second)} vs {len(first)} items); A/B arms must share the items")
    router = Router(settings.split_b if len(arms) == 2 else 0.0, settings.salt)
    return Service(arms, router, settings)


# ---------------------------------------------------------------------------------------------
# HTTP

ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (400, 404, 409, 413, 415, 422)}
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
PICTURE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp", "image/tiff")
SEED_ITEMS_PATTERN = rf"^[^,]*(,[^,]*){{0,{MAX_SEED_ITEMS - 1}}}$"
PATTERN_MESSAGES = {"items": f"at most {MAX_SEED_ITEMS} comma-separated ids",
                    "item_id": "no control characters"}


def create_app(service: Service) -> FastAPI:
    """The FastAPI app serving ``service``; its docs page (``/docs``) needs no network."""
    app = FastAPI(title="modalrec", version="1", description=__doc__, responses=ERRORS, docs_url=None,
                  redoc_url=None)
    metrics = RequestMetrics()
    app.state.metrics = metrics
    _add_error_handlers(app)
    _add_read_routes(app, service)
    _add_write_routes(app, service)
    _add_status_routes(app, service, metrics)
    _add_page_routes(app, service)
    limit = service.settings.max_upload_bytes
    app.add_middleware(BodyLimitMiddleware, limits={"/items": limit + FORM_OVERHEAD_BYTES}, default=MAX_BODY_BYTES)
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
    def feedback(events: Annotated[FeedbackIn | Annotated[list[FeedbackIn],
                                                          Field(min_length=1, max_length=MAX_FEEDBACK_EVENTS)],
                                   Body()]) -> JSONResponse:
        """Store one event or a list (one transaction); it is on disk when the answer comes."""
        batch = events if isinstance(events, list) else [events]
        stored = service.record([e.model_dump() for e in batch])
        return JSONResponse({"stored": stored}, status_code=201)

    form = new_item_form(_text_fields(service), _file_fields(service), MAX_ITEM_ID_LENGTH)

    @app.post("/items", status_code=201, response_model=NewItemOut, tags=["items"],
              responses={403: {"model": ErrorOut, "description": "a content path outside the allowed folders"}},
              openapi_extra={"requestBody": form})
    async def add_item(request: Request) -> JSONResponse:
        """Add an item from its content (a multipart form): ``item_id``, the dataset's text columns (such as
        ``title``), and a picture as an ``image`` upload or an ``image_path`` inside an allowed folder. The item
        is embedded by the model's content path and recommendable at once.

        An upload must be a PNG, JPEG, WebP, GIF or BMP picture (its bytes are checked, not only its declared
        type) of at most the service's upload limit (8 MiB unless ``--max-upload-mb`` says otherwise)."""
        kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind not in FORM_TYPES:
            raise ServiceError(415, f"expected a form ({' or '.join(FORM_TYPES)}), got content type "
                                    f"'{kind or 'none'}'")
        form = await request.form(max_files=4, max_fields=64, max_part_size=MAX_FORM_FIELD_BYTES)
        try:
            content = await _new_item_content(service, form)
        finally:
            await form.close()
        try:
            answer = await run_in_threadpool(service.add_item, content)
        except BaseException:
            for path in content.files.values():
                if path.is_relative_to(service.new_items.images.resolve()):
                    path.unlink(missing_ok=True)
            raise
        return JSONResponse(answer, status_code=201)


def _text_fields(service: Service) -> list[str]:
    try:
        return service.embedder.text_columns()
    except ModalrecError:
        return []


def _file_fields(service: Service) -> list[str]:
    try:
        return service.embedder.file_modalities()
    except ModalrecError:
        return []


async def _new_item_content(service: Service, form: Any) -> NewItemContent:
    """Read and check the form of POST /items (uploads stored, paths checked against the allowed folders)."""
    service.check_can_add_items()
    files_allowed = service.embedder.file_modalities()
    text_fields = service.embedder.text_columns()
    known = {"item_id", "title", *text_fields, *files_allowed, *(f"{m}_path" for m in files_allowed)}
    unknown = sorted(set(form.keys()) - known)
    if unknown:
        raise ServiceError(422, f"unknown form field '{unknown[0]}'; expected: {', '.join(sorted(known))}")
    item_id = form.get("item_id")
    if not isinstance(item_id, str):
        raise ServiceError(422, "item_id: a text form field is required")
    item_id = check_item_id(item_id, service.catalogue)
    texts = {}
    for name in ("title", *text_fields):
        value = form.get(name)
        if isinstance(value, UploadFile):
            raise ServiceError(422, f"{name}: expected text, got a file upload")
        if value and len(value) > MAX_TEXT_CHARS:
            raise ServiceError(422, f"{name}: at most {MAX_TEXT_CHARS} characters, got {len(value)}")
        if value and name in text_fields:
            texts[name] = str(value)
    title = form.get("title")
    files: dict[str, Path] = {}
    base = service.catalogue.source.items_file.parent if service.catalogue.source.items_file else Path.cwd()
    for modality in files_allowed:
        upload, given_path = form.get(modality), form.get(f"{modality}_path")
        if upload is not None and given_path:
            raise ServiceError(422, f"{modality}: give an upload or {modality}_path, not both")
        if isinstance(upload, UploadFile):
            files[modality] = await _stored_upload(service, modality, upload, item_id)
        elif upload is not None:
            raise ServiceError(422, f"{modality}: expected a file upload (or {modality}_path with a path)")
        elif isinstance(given_path, UploadFile):
            raise ServiceError(422, f"{modality}_path: expected text (a path), got a file upload")
        elif given_path and given_path.strip():
            if len(given_path) > MAX_PATH_CHARS:
                raise ServiceError(422, f"{modality}_path: at most {MAX_PATH_CHARS} characters")
            files[modality] = image_path_inside(given_path, service.picture_roots, base, f"{modality}_path")
    return NewItemContent(item_id, texts, files, title if isinstance(title, str) and title.strip() else None)


async def _stored_upload(service: Service, modality: str, upload: UploadFile, item_id: str) -> Path:
    """Check an uploaded picture (size, declared type and real format) and store it with the new items."""
    if modality != "image":
        raise ServiceError(415, f"{modality}: only pictures can be uploaded; give {modality}_path")
    limit = service.settings.max_upload_bytes
    if upload.size is not None and upload.size > limit:
        raise ServiceError(413, f"image: the upload has {upload.size} bytes; at most {limit} are accepted")
    data = await upload.read(limit + 1)
    return await run_in_threadpool(save_upload, data, upload.content_type or "", item_id,
                                   service.new_items.images, limit)


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


def _add_page_routes(app: FastAPI, service: Service) -> None:
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
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    def docs() -> FileResponse:
        return FileResponse(STATIC_DIR / "docs.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def serve(service: Service, host: str = DEFAULT_HOST, port: int = 8000, *, access_log: bool = False) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    log.info("serving %s on http://%s:%d (docs at /docs)", ", ".join(
        f"{a.name}={a.model_name}" for a in service.arms.values()), host, port)
    uvicorn.run(create_app(service), host=host, port=port, access_log=access_log, log_level="info",
                h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES)
