"""The service's request and response bodies, as the OpenAPI spec at ``/openapi.json`` documents them.

Endpoints answer with plain dicts (no per-request validation cost); these models are what the spec
promises, and the fuzzing test (``tests/serve/test_fuzz.py``) checks every answer against them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from modalrec.serve.ab import ArmReport

Source = Literal["model", "popular", "items"]
MAX_ID_CHARS = 256  # user and item ids in queries and feedback
MAX_TEXT_CHARS = 10_000  # one text field of a new item
MAX_PATH_CHARS = 4096  # a new item's content path
CONTROL_FREE = r"^[^\x00-\x1f\x7f]*$"


class ItemRef(BaseModel):
    item: str
    title: str | None
    image: str | None = Field(description="URL of the item's picture, when the dataset has one")


class ItemOut(ItemRef):
    score: float
    rank: int


class RecommendOut(BaseModel):
    user: str
    arm: str = Field(description="A, or B for users routed to the second run")
    model: str
    source: Source = Field(description="model (known user), popular (unknown user, training counts) or "
                                       "items (unknown user, mean vector of the given items)")
    k: int
    items: list[ItemOut]


class SimilarOut(BaseModel):
    item: str
    arm: str
    model: str
    k: int
    items: list[ItemOut]


class HistoryOut(BaseModel):
    user: str
    arm: str
    count: int = Field(description="all the user's training items; `items` holds the first `limit`")
    items: list[ItemRef]


class UsersOut(BaseModel):
    users: list[str]


class FeedbackIn(BaseModel):
    # strict: no coercion of booleans to timestamps or of numbers to ids, so that what the spec refuses is refused
    model_config = ConfigDict(extra="forbid", strict=True)

    user: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    item: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    event: Literal["impression", "click", "purchase"]
    timestamp: float | None = Field(default=None, ge=0, le=1e10, allow_inf_nan=False,
                                    description="seconds since 1970; the time of receipt when left out")


class FeedbackOut(BaseModel):
    stored: int = Field(description="events stored (on disk when the answer comes)")


class NewItemOut(ItemRef):
    modalities: dict[str, Literal["content", "mean"]] = Field(
        description="per modality: features from the given content, or the dataset's mean (none given)")
    items: int = Field(description="catalogue size with the new item")


class ArmOut(BaseModel):
    run: str
    model: str
    users: int
    items: int
    index: str
    embeds_new_items: bool


class HealthOut(BaseModel):
    status: Literal["ok"]
    uptime_s: float
    arms: dict[str, ArmOut]
    split_b: float | None = Field(description="percent of users routed to arm B; null with one arm")
    items: int
    new_items: int
    feedback_db: str
    max_k: int
    page_feedback: bool = Field(False, description="whether the web page logs impressions and clicks unless the "
                                                   "visitor unticks it (serve --page-feedback)")


class MetricsOut(BaseModel):
    endpoints: dict[str, dict[str, float]] = Field(
        description="per endpoint: requests, counts by status class (2xx, 4xx, ...), p50_ms, p95_ms, p99_ms, "
                    "window (latencies the percentiles cover)")
    latency_window: int


class ABReportOut(BaseModel):
    arms: list[ArmReport] = Field(description="per arm: users, impressions, clicks, purchases, CTR with its 95% "
                                              "Wilson interval (ctr_low, ctr_high) and lift relative to arm A's "
                                              "CTR; null where undefined")
    z: float | None = Field(description="two-proportion z statistic of B against A")
    p_value: float | None
    experiment: dict[str, str]


class ErrorOut(BaseModel):
    error: str
    status: int


def new_item_form(text_fields: list[str], file_modalities: list[str], max_item_id: int) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of ``POST /items`` for a dataset with these content fields."""
    text = {"type": "string", "maxLength": MAX_TEXT_CHARS}
    path = {"type": "string", "maxLength": MAX_PATH_CHARS,
            "description": "a file inside the dataset's content folder (or a folder allowed by --allow-images-from)"}
    fields: dict[str, Any] = {
        "item_id": {"type": "string", "minLength": 1, "maxLength": max_item_id, "pattern": CONTROL_FREE,
                    "description": "the new item's id (not in the catalogue yet)"},
        "title": text,
        **{name: text for name in text_fields},
        **{f"{m}_path": path for m in file_modalities},
    }
    uploads = {m: {"type": "string", "format": "binary", "description": "a PNG, JPEG, WebP, GIF or BMP picture"}
               for m in file_modalities if m == "image"}
    form = {"type": "object", "required": ["item_id"], "additionalProperties": False}
    return {"required": True, "content": {
        "multipart/form-data": {"schema": {**form, "properties": {**fields, **uploads}}},
        "application/x-www-form-urlencoded": {"schema": {**form, "properties": fields}},
    }}
