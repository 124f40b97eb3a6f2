"""The /recommend shortcut (issue 17, serving under load): plain queries answered without FastAPI's per-request
parameter work give the route's very response; everything else, refusals included, is still the route's."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Route

from modalrec.cli.main import main
from modalrec.data.build import BuildOptions, ModalitySpec, build_dataset, read_raw_tables
from modalrec.serve.app import create_app
from modalrec.serve.auth import AccessPolicy, allowed_hosts
from modalrec.serve.service import MAX_K, load_service
from modalrec.serve.shortcut import RecommendShortcut, plain_recommend_query
from tests.serve.test_app import FAST, error_of, raw_shop

TOKEN = "t0ken-for-the-shortcut-0123456789"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shortcut")
    interactions, items = raw_shop(root / "raw")
    specs = [ModalitySpec("image", ("image",), "handcrafted", {})]
    build_dataset(read_raw_tables(interactions, items), specs, root / "built", BuildOptions(progress=False))
    assert main(["train", "--data", str(root / "built"), "--model", "vbpr", "--out", str(root / "run"), *FAST]) == 0
    return root / "run"


@pytest.mark.parametrize(("query", "expected"), [
    (b"user=U3&k=20", ("U3", 20, True)),
    (b"k=1&user=U3", ("U3", 1, True)),
    (f"user=U3&k={MAX_K}".encode(), ("U3", MAX_K, True)),
    (b"user=U3&k=5&exclude_seen=false", ("U3", 5, False)),
    (b"user=U3&k=5&exclude_seen=true", ("U3", 5, True)),
    (b"user=%C3%A9+x&k=5", ("\u00e9 x", 5, True)),  # decoded as Starlette decodes it
    (b"user=" + b"u" * 256 + b"&k=5", ("u" * 256, 5, True)),
])
def test_plain_queries_are_recognised(query: bytes, expected: tuple[str, int, bool]) -> None:
    assert plain_recommend_query(query) == expected


@pytest.mark.parametrize("query", [
    b"", b"user=U3", b"k=5", b"user=&k=5", b"user=" + b"u" * 257 + b"&k=5",
    b"user=U3&k=0", b"user=U3&k=020", b"user=U3&k=501", b"user=U3&k=99999999999999999999", b"user=U3&k=-5",
    b"user=U3&k=+5", b"user=U3&k=5.0", b"user=U3&k=%205", b"user=U3&k=\xd9\xa3",  # Arabic-Indic digit three
    b"user=U3&k=5&exclude_seen=1", b"user=U3&k=5&exclude_seen=", b"user=U3&k=5&items=I1",
    b"user=U3&user=U4&k=5", b"user=U3&k=5&k=6", b"user=U3&k=5&token=x", b"user=U3&k=5&other=1",
])
def test_everything_else_is_left_to_the_route(query: bytes) -> None:
    assert plain_recommend_query(query) is None


def without_shortcut(app: FastAPI) -> FastAPI:
    """``app`` answering every /recommend through FastAPI's route (before its middleware stack is built)."""
    app.user_middleware[:] = [m for m in app.user_middleware if m.cls is not RecommendShortcut]
    return app


QUERIES = ["user=U3&k=4", "user=U3&k=4&exclude_seen=false", "user=U0&k=1", f"user=U5&k={MAX_K}",
           "user=nobody&k=3", "user=%C3%A9&k=2"]


@pytest.mark.parametrize("query", QUERIES)
def test_the_shortcut_gives_the_routes_very_response(run: Path, query: str) -> None:
    service = load_service([run])
    through_app = TestClient(create_app(service)).get(f"/recommend?{query}")
    route_only = TestClient(without_shortcut(create_app(service))).get(f"/recommend?{query}")
    assert through_app.status_code == route_only.status_code == 200
    assert through_app.content == route_only.content
    assert through_app.headers["content-type"] == route_only.headers["content-type"]
    assert through_app.headers["content-length"] == route_only.headers["content-length"]


def test_plain_queries_are_answered_without_the_route_and_others_by_it(run: Path) -> None:
    app = create_app(load_service([run]))
    app.router.routes[:] = [r for r in app.router.routes if not (isinstance(r, Route) and r.path == "/recommend")]
    client = TestClient(app)
    assert client.get("/recommend", params={"user": "U3", "k": 4}).json()["source"] == "model"
    assert client.get("/recommend", params={"user": "U3", "k": 4, "exclude_seen": "1"}).status_code == 404


def test_refusals_still_come_from_the_route(run: Path) -> None:
    client = TestClient(create_app(load_service([run])))
    assert error_of(client.get("/recommend", params={"user": "U3", "k": 0}), 422).startswith("k: ")
    assert error_of(client.get("/recommend", params={"user": "U3", "k": MAX_K + 1}), 422).startswith("k: ")
    assert "unknown item" in error_of(client.get("/recommend", params={"user": "x", "k": 2, "items": "nope"}), 404)
    assert client.get("/recommend", params={"user": "U3", "k": 2, "items": "I1"}).json()["source"] == "model"


def test_access_checks_and_metrics_apply_to_the_shortcut(run: Path) -> None:
    policy = AccessPolicy(token=TOKEN, protect_reads=True, hosts=allowed_hosts("127.0.0.1"))
    client = TestClient(create_app(load_service([run]), policy), base_url="http://127.0.0.1:8000")
    assert client.get("/recommend", params={"user": "U3", "k": 4}).status_code == 401
    assert client.get("/recommend", params={"user": "U3", "k": 4}, headers={"Host": "evil.example"}).status_code == 403
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/recommend", params={"user": "U3", "k": 4}, headers=bearer).status_code == 200
    counts = client.get("/metrics", headers=bearer).json()["endpoints"]["/recommend"]
    assert (counts["requests"], counts["2xx"], counts["4xx"]) == (3, 1, 2)
