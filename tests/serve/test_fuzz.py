"""Schemathesis fuzzes every operation of the service against its own OpenAPI spec: valid and invalid
requests alike must get an answer of a documented status, content type and schema, and never a 500.

``MODALREC_FUZZ_EXAMPLES`` sets the examples per operation and mode (default 25: about 20 s in all);
``MODALREC_FUZZ_LOG`` names a file to append the cases tried and the statuses they got to. The README's
one-off large run sets thousands, and also runs schemathesis' own CLI against a live server
(``tests/serve/schemathesis.toml``).
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import positive_data_acceptance
from schemathesis.specs.openapi.schemas import OpenApiSchema

from modalrec.cli.main import main
from modalrec.data.build import BuildOptions, ModalitySpec, build_dataset, read_raw_tables
from modalrec.serve.app import create_app
from modalrec.serve.service import load_service
from tests.serve.test_app import FAST, raw_shop

EXAMPLES = int(os.environ.get("MODALREC_FUZZ_EXAMPLES", "25"))
LOG = os.environ.get("MODALREC_FUZZ_LOG")  # a file to append each test's case count and answer statuses to


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    """A vbpr run on a built shop (pictures and titles), so that POST /items embeds new items for real."""
    root = tmp_path_factory.mktemp("fuzz")
    interactions, items = raw_shop(root / "raw")
    specs = [ModalitySpec("image", ("image",), "handcrafted", {}), ModalitySpec("text", ("title",), "tfidf", {})]
    build_dataset(read_raw_tables(interactions, items), specs, root / "built", BuildOptions(progress=False))
    assert main(["train", "--data", str(root / "built"), "--model", "vbpr", "--out", str(root / "run"), *FAST]) == 0
    return create_app(load_service([root / "run"]))


OPERATIONS = ["GET /recommend", "GET /similar", "GET /history", "GET /users", "POST /feedback", "POST /items",
              "GET /health", "GET /metrics", "GET /ab/report", "GET /images/{item_id}"]
WITHOUT_INPUTS = {"GET /health", "GET /metrics"}  # nothing a request could get wrong
# A schema-valid POST /items may still be refused: its upload must be a real picture, and it needs some content.
CONTENT_CHECKED = {"POST /items"}


@pytest.fixture(scope="module")
def fuzzed_schema(fuzzed_app: FastAPI) -> OpenApiSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)


def test_every_operation_is_fuzzed(fuzzed_schema: OpenApiSchema) -> None:
    assert sorted(op.ok().label for op in fuzzed_schema.get_all_operations()) == sorted(OPERATIONS)


def test_what_fuzzing_found_stays_fixed(fuzzed_app: FastAPI) -> None:
    client = TestClient(fuzzed_app)
    # the coverage phase: a boolean timestamp was coerced to 0.0 and stored
    event = {"user": "U0", "item": "I0", "event": "click", "timestamp": False}
    assert client.post("/feedback", json=[event]).status_code == 422
    # the unsupported-method check: 405 lost its Allow header in the JSON error handler
    refused = client.delete("/recommend")
    assert refused.status_code == 405 and refused.headers["allow"] == "GET"
    # the stateful phase: /images/%0A matched the route with an empty id (Starlette's pattern ends in $), then
    # failed a minimum length the spec's "\n" meets
    missing = client.get("/images/%0A")
    assert missing.status_code == 404 and missing.json()["status"] == 404
    # undocumented content types: the text report and the pictures
    spec = client.get("/openapi.json").json()["paths"]
    assert {"application/json", "text/plain"} <= set(spec["/ab/report"]["get"]["responses"]["200"]["content"])
    assert "image/png" in spec["/images/{item_id}"]["get"]["responses"]["200"]["content"]
    assert client.get("/ab/report", params={"format": "text"}).headers["content-type"].startswith("text/plain")
    # POST /items had no documented body, so it was never fuzzed; and a non-form body reached the form parser
    assert "multipart/form-data" in spec["/items"]["post"]["requestBody"]["content"]
    assert client.post("/items", content=b"{}", headers={"content-type": "application/json"}).status_code == 415


CASES = [(op, mode) for op in OPERATIONS for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         if not (op in WITHOUT_INPUTS and mode == GenerationMode.NEGATIVE)]


@pytest.mark.parametrize(("operation", "mode"), CASES, ids=[f"{op}-{mode.value}" for op, mode in CASES])
def test_every_answer_is_documented_and_none_is_a_500(fuzzed_schema: OpenApiSchema, operation: str,
                                                      mode: GenerationMode) -> None:
    method, path = operation.split()
    strategy = fuzzed_schema[path][method].as_strategy(generation_mode=mode)
    excluded = [positive_data_acceptance] if operation in CONTENT_CHECKED else []
    statuses: collections.Counter[int] = collections.Counter()

    @given(case=strategy)
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case: Case) -> None:
        statuses[case.call_and_validate(excluded_checks=excluded).status_code] += 1

    fuzz()
    assert statuses and max(statuses) < 500
    if LOG:
        with open(LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps({"operation": operation, "mode": mode.value, "cases": sum(statuses.values()),
                                  "statuses": dict(sorted(statuses.items()))}) + "\n")
