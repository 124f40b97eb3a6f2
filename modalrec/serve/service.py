"""The recommendation service in plain Python: trained runs ready to answer, with A/B routing, new items
and feedback. No HTTP here: :mod:`modalrec.serve.app` puts it behind FastAPI.

:func:`load_service` reads one run (or two, for an A/B test) into a :class:`Service`; each run becomes a
:class:`ServedArm`. A request the service refuses raises :class:`~modalrec.serve.items.ServiceError` with
the HTTP status it stands for. The service writes only inside the first run's folder (new items, their
pictures, and the feedback database unless ``ServiceSettings.db`` names another).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modalrec.errors import ConfigError
from modalrec.evaluate.evaluator import top_k_deterministic
from modalrec.models.base import Recommender
from modalrec.models.registry import capabilities_of
from modalrec.serve.ab import DEFAULT_SALT, Router
from modalrec.serve.feedback import FEEDBACK_FILE, FeedbackEvent, FeedbackStore
from modalrec.serve.index import IndexConfig, Neighbours, VectorIndex
from modalrec.serve.items import (
    Catalogue,
    ContentEmbedder,
    NewItemContent,
    NewItemStore,
    ServiceError,
    check_item_id,
    check_items_cover,
    items_file_source,
    read_content_source,
    stored_item,
)
from modalrec.serve.schemas import Source
from modalrec.train.run import LoadedRun, load_run

log = logging.getLogger(__name__)

MAX_K = 500
"""Largest ``k`` /recommend and /similar accept."""
MAX_UPLOAD_BYTES = 8 << 20  # one uploaded picture, unless ServiceSettings.max_upload_bytes says otherwise
INDEX_CACHE_DIR = "serve_index"


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
    items_file: Path | None = None  # titles and pictures from this table (item_id,title[,image]), not the dataset's
    page_feedback: bool = False  # the web page logs impressions and clicks unless the visitor unticks it

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
        trained = np.bincount(run.split.train.users, minlength=run.split.num_users) > 0
        # a user with no training interaction has an untrained vector: unknown, served the fallback
        self.user_index = {user: i for user, i in run.dataset.user_ids.lookup().items() if trained[i]}
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
        shown = source  # where titles and pictures come from: the dataset's items table, or --items
        if settings.items_file is not None:
            shown = items_file_source(settings.items_file)
            check_items_cover(shown, dataset.item_ids.external)
        self.new_items = NewItemStore(first.run_dir)
        self.catalogue = Catalogue(dataset.item_ids.external, shown, uploads=self.new_items.images)
        self.embedder = ContentEmbedder(source, dataset.features, settings.device)
        roots = (*shown.roots, *source.roots, *(r.resolve() for r in settings.image_roots))
        self.picture_roots = tuple(dict.fromkeys(roots))
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
                "feedback_db": str(self.feedback.path), "max_k": MAX_K,
                "page_feedback": self.settings.page_feedback}

    # -- writing -------------------------------------------------------------------------------

    def record(self, events: list[dict[str, Any]]) -> int:
        """Store feedback events (``user``, ``item``, ``event``, optional ``timestamp``) with each user's arm;
        returns their count once they are on disk."""
        self.submit_feedback(events).result()
        return len(events)

    def submit_feedback(self, events: list[dict[str, Any]]) -> Future[None]:
        """Queue feedback events for the store's writer (:meth:`record` without the wait); an unknown item is
        refused at once, and the future completes once the events are on disk."""
        self.item_indices([e["item"] for e in events])
        now = time.time()
        return self.feedback.submit([
            FeedbackEvent(e["user"], e["item"], e["event"], now if e.get("timestamp") is None else e["timestamp"],
                          self.router.arm(e["user"]) if len(self.arms) > 1 else "A")
            for e in events
        ])

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
