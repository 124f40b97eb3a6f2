"""The HTTP service in-process (FastAPI's TestClient): answers, fallbacks, new items, and refusals as 4xx JSON."""

from __future__ import annotations

import dataclasses
import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from modalrec.cli.main import main
from modalrec.data.build import BuildOptions, ModalitySpec, build_dataset, read_raw_tables
from modalrec.models import Capabilities, get_model
from modalrec.models import registry
from modalrec.models.base import Embeddings, NotSupported
from modalrec.serve.app import create_app
from modalrec.serve.service import MAX_K, ServedArm, load_service
from modalrec.serve.index import IndexConfig
from modalrec.serve.items import NEW_ITEMS_FILE, ServiceError
from modalrec.serve.recommend import recommend_for_users
from modalrec.train.run import load_run
from tests.conftest import block_dataset, write_mmrec

FAST = ["--set", "epochs=5", "--set", "progress=false", "--set", "batch_size=16"]
COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}


def picture(colour: tuple[int, int, int], seed: int) -> Image.Image:
    noise = np.random.default_rng(seed).integers(-20, 20, size=(32, 32, 3))
    return Image.fromarray(np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8))


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def raw_shop(folder: Path) -> tuple[Path, Path]:
    """12 items in 3 colour groups (pictures and titles), 24 users who each like one group; I11's picture
    path points outside the folder."""
    (folder / "images").mkdir(parents=True)
    (folder.parent / "secret.png").write_bytes(png_bytes(picture((0, 0, 0), 99)))
    names = list(COLOURS)
    items = []
    for item in range(12):
        colour = names[item // 4]
        picture(COLOURS[colour], item).save(folder / "images" / f"I{item}.png")
        image = "../secret.png" if item == 11 else f"images/I{item}.png"
        items.append({"item_id": f"I{item}", "title": f"{colour} mug {item}", "image": image})
    pd.DataFrame(items).to_csv(folder / "items.csv", index=False)
    rows, _ = block_dataset()
    pd.DataFrame([{"user_id": f"U{u}", "item_id": f"I{i}", "x_label": label} for u, i, label in rows]).to_csv(
        folder / "interactions.csv", index=False)
    return folder / "interactions.csv", folder / "items.csv"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A dataset built by the builder (handcrafted pictures, TF-IDF titles), with a vbpr and a bpr run."""
    root = tmp_path_factory.mktemp("shop")
    interactions, items = raw_shop(root / "raw")
    specs = [ModalitySpec("image", ("image",), "handcrafted", {}), ModalitySpec("text", ("title",), "tfidf", {})]
    data = root / "built"
    build_dataset(read_raw_tables(interactions, items), specs, data, BuildOptions(progress=False))
    runs = {}
    for model in ("vbpr", "bpr"):
        runs[model] = root / model
        assert main(["train", "--data", str(data), "--model", model, "--out", str(runs[model]), *FAST]) == 0
    return {"raw": root / "raw", "data": data, **runs}


@pytest.fixture(scope="module")
def client(shop: dict[str, Path]) -> TestClient:
    return TestClient(create_app(load_service([shop["vbpr"]])))


def error_of(response: object, status: int) -> str:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["status"] == status and isinstance(body["error"], str) and body["error"]
    return str(body["error"])


def test_recommend_matches_the_offline_recommender(client: TestClient, shop: dict[str, Path]) -> None:
    answer = client.get("/recommend", params={"user": "U0", "k": 5}).json()
    assert (answer["user"], answer["arm"], answer["model"], answer["source"], answer["k"]) == ("U0", "A", "vbpr",
                                                                                              "model", 5)
    offline = recommend_for_users(load_run(shop["vbpr"]), ["U0"], 5)
    assert [row["item"] for row in answer["items"]] == offline["item_id"].tolist()
    assert [row["score"] for row in answer["items"]] == pytest.approx(offline["score"].tolist(), rel=1e-5)
    assert [row["rank"] for row in answer["items"]] == [1, 2, 3, 4, 5]
    first = answer["items"][0]
    assert first["title"].endswith(first["item"][1:]) and first["image"] == f"/images/{first['item']}"


def test_seen_items_are_excluded_unless_asked(client: TestClient) -> None:
    seen = {row["item"] for row in client.get("/history", params={"user": "U0"}).json()["items"]}
    assert len(seen) == 2  # block_dataset: 4 items per group, 2 of them train
    everything = client.get("/recommend", params={"user": "U0", "k": 12}).json()["items"]
    assert len(everything) == 10 and not seen & {row["item"] for row in everything}
    with_seen = client.get("/recommend", params={"user": "U0", "k": 12, "exclude_seen": "false"}).json()["items"]
    assert len(with_seen) == 12 and seen <= {row["item"] for row in with_seen}


def test_unknown_users_get_popular_items_or_items_near_the_given_ones(client: TestClient,
                                                                      shop: dict[str, Path]) -> None:
    popular = client.get("/recommend", params={"user": "stranger", "k": 3}).json()
    assert popular["source"] == "popular"
    counts = pd.Series(load_run(shop["vbpr"]).split.train.items).value_counts()
    assert [row["score"] for row in popular["items"]] == sorted(counts.to_numpy()[:3].tolist(), reverse=True)
    seeded = client.get("/recommend", params={"user": "stranger", "k": 3, "items": "I0,I1"}).json()
    assert seeded["source"] == "items"
    assert not {"I0", "I1"} & {row["item"] for row in seeded["items"]}
    run = load_run(shop["vbpr"])
    vectors = run.model.embeddings().items.numpy()
    expected = np.argsort(-(vectors @ vectors[[0, 1]].mean(0)), kind="stable")
    expected = [f"I{i}" for i in expected if i not in (0, 1)][:3]
    assert [row["item"] for row in seeded["items"]] == expected


def test_similar_items_by_cosine_leave_the_item_out(client: TestClient, shop: dict[str, Path]) -> None:
    answer = client.get("/similar", params={"item": "I4", "k": 4}).json()
    vectors = load_run(shop["vbpr"]).model.embeddings().items.numpy()
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    expected = [f"I{i}" for i in np.argsort(-(unit @ unit[4]), kind="stable") if i != 4][:4]
    assert [row["item"] for row in answer["items"]] == expected
    assert answer["items"][0]["score"] == pytest.approx(float(np.sort(unit @ unit[4])[-2]), rel=1e-5)


@pytest.mark.parametrize(("params", "status", "words"), [
    ({"user": "U0"}, 422, "k: Field required"),
    ({"user": "U0", "k": "ten"}, 422, "valid integer"),
    ({"user": "U0", "k": "2.5"}, 422, "valid integer"),
    ({"user": "U0", "k": 0}, 422, "greater than or equal to 1"),
    ({"user": "U0", "k": MAX_K + 1}, 422, f"less than or equal to {MAX_K}"),
    ({"k": 5}, 422, "user: Field required"),
    ({"user": "U0", "k": 5, "exclude_seen": "maybe"}, 422, "exclude_seen"),
    ({"user": "stranger", "k": 5, "items": "I0,NOPE"}, 404, "unknown item 'NOPE'"),
    ({"user": "stranger", "k": 5, "items": ",".join(["I0"] * 101)}, 422, "at most 100"),
])
def test_malformed_recommend_requests_get_a_4xx_json_error(client: TestClient, params: dict[str, object],
                                                           status: int, words: str) -> None:
    assert words in error_of(client.get("/recommend", params=params), status)


def test_other_refusals_are_4xx_json_errors(client: TestClient) -> None:
    assert "unknown item 'I99'" in error_of(client.get("/similar", params={"item": "I99", "k": 3}), 404)
    assert "unknown user" in error_of(client.get("/history", params={"user": "nobody"}), 404)
    assert error_of(client.get("/no/such/route"), 404)
    assert error_of(client.delete("/recommend"), 405)
    huge = b'{"user": "' + b"x" * (2 << 20) + b'"}'
    assert "too large" in error_of(client.post("/feedback", content=huge,
                                               headers={"content-type": "application/json"}), 413)
    assert error_of(client.post("/feedback", content=b"{not json", headers={"content-type": "application/json"}), 422)
    assert "event" in error_of(client.post("/feedback", json={"user": "U0", "item": "I0", "event": "like"}), 422)
    assert "timestamp" in error_of(client.post("/feedback", json={"user": "U0", "item": "I0", "event": "click",
                                                                  "timestamp": 1.7e12}), 422)
    assert "unknown item" in error_of(client.post("/feedback", json={"user": "U0", "item": "X", "event": "click"}),
                                      404)
    assert "at most 1000" in error_of(client.post("/feedback", json=[{"user": "U0", "item": "I0",
                                                                      "event": "click"}] * 1001), 422)


def test_pictures_come_only_from_the_content_folder(client: TestClient) -> None:
    response = client.get("/images/I0")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (32, 32)
    assert "no picture" in error_of(client.get("/images/I11"), 404)  # its path leads outside the folder
    for attempt in ("../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "I0/../../../secret.png"):
        assert client.get(f"/images/{attempt}").status_code == 404


def copy_run(run: Path, tmp_path: Path) -> Path:
    """A private copy of a run folder, so the new items a test adds stay in it."""
    return Path(shutil.copytree(run, tmp_path / run.name))


def test_new_item_from_an_upload_is_recommendable_at_once_and_survives_a_restart(shop: dict[str, Path],
                                                                                  tmp_path: Path) -> None:
    run_dir = copy_run(shop["vbpr"], tmp_path)
    service = load_service([run_dir])
    client = TestClient(create_app(service))
    image = png_bytes(picture(COLOURS["red"], 7))
    response = client.post("/items", data={"item_id": "NEW-1", "title": "red mug deluxe"},
                           files={"image": ("mug.png", image, "image/png")})
    assert response.status_code == 201, response.text
    assert response.json()["modalities"] == {"image": "content", "text": "content"}
    assert response.json()["items"] == 13

    run = load_run(run_dir)
    stored = pd.read_parquet(run_dir / NEW_ITEMS_FILE)
    features = {m: torch.tensor(np.stack(stored[f"feat_{m}"].to_list()), dtype=torch.float32)
                for m in ("image", "text")}
    vector = run.model.content_item_vectors(features).detach().numpy()[0]
    user_vector = run.model.embeddings().users.numpy()[run.dataset.user_ids.lookup()["U0"]]

    everything = client.get("/recommend", params={"user": "U0", "k": 20}).json()["items"]
    scores = {row["item"]: row["score"] for row in everything}
    assert scores["NEW-1"] == pytest.approx(float(user_vector @ vector), rel=1e-4)
    assert client.get("/similar", params={"item": "NEW-1", "k": 3}).json()["items"]
    assert client.get("/images/NEW-1").content == image
    assert "already" in error_of(client.post("/items", data={"item_id": "NEW-1", "title": "again"}), 409)

    restarted = TestClient(create_app(load_service([run_dir])))
    again = {row["item"]: row["score"] for row in
             restarted.get("/recommend", params={"user": "U0", "k": 20}).json()["items"]}
    assert again["NEW-1"] == pytest.approx(scores["NEW-1"], rel=1e-5)
    assert restarted.get("/images/NEW-1").content == image


def test_new_item_from_a_path_inside_the_content_folder(shop: dict[str, Path], tmp_path: Path) -> None:
    client = TestClient(create_app(load_service([copy_run(shop["vbpr"], tmp_path)])))
    response = client.post("/items", data={"item_id": "NEW-2", "image_path": "images/I5.png"})
    assert response.status_code == 201, response.text
    assert response.json()["modalities"] == {"image": "content", "text": "mean"}
    assert response.json()["title"] is None


@pytest.mark.parametrize(("data", "files", "status", "words"), [
    ({"item_id": "X", "image_path": "../../etc/passwd"}, None, 403, "outside"),
    ({"item_id": "X", "image_path": "/etc/passwd"}, None, 403, "outside"),
    ({"item_id": "X", "image_path": "images/none.png"}, None, 400, "file not found"),
    ({"item_id": "X", "image_path": "items.csv"}, None, 422, "not a readable image"),
    ({"item_id": "X"}, {"image": ("a.txt", b"hello", "text/plain")}, 415, "image/*"),
    ({"item_id": "X"}, {"image": ("a.png", b"\x89PNG\r\n\x1a\nbroken", "image/png")}, 422, "not a readable picture"),
    ({"item_id": "X"}, {"image": ("a.png", b"", "image/png")}, 422, "empty"),
    ({"item_id": "X"}, {"image": ("a.tif", None, "image/tiff")}, 415, "TIFF"),
    ({"item_id": "X"}, None, 422, "no content"),
    ({"title": "no id"}, None, 422, "item_id"),
    ({"item_id": "I0", "title": "taken"}, None, 409, "already"),
    ({"item_id": "X", "colour": "red"}, None, 422, "unknown form field 'colour'"),
    ({"item_id": "X", "image_path": "images/I0.png"}, {"image": ("a.png", None, "image/png")}, 422, "not both"),
])
def test_bad_new_items_are_refused(client: TestClient, data: dict[str, str], files: dict[str, tuple] | None,
                                   status: int, words: str) -> None:
    if files:
        name, content, kind = files["image"]
        if content is None:
            buffer = io.BytesIO()
            picture((9, 9, 9), 0).save(buffer, format="TIFF" if kind == "image/tiff" else "PNG")
            content = buffer.getvalue()
        files = {"image": (name, content, kind)}
    assert words in error_of(client.post("/items", data=data, files=files), status)


def test_an_oversized_upload_is_refused(client: TestClient) -> None:
    assert "too large" in error_of(client.post("/items", data={"item_id": "X"},
                                               files={"image": ("a.png", b"0" * (10 << 20), "image/png")}), 413)


def test_new_items_need_a_built_dataset_and_a_content_model(shop: dict[str, Path], tmp_path: Path) -> None:
    bpr = TestClient(create_app(load_service([shop["bpr"]])))
    assert "bpr" in error_of(bpr.post("/items", data={"item_id": "X", "title": "red"}), 409)
    rows, features = block_dataset()
    data = write_mmrec(tmp_path / "mmrec", rows, features={"image": features})
    assert main(["train", "--data", str(data), "--model", "vbpr", "--out", str(tmp_path / "run"), *FAST]) == 0
    plain = TestClient(create_app(load_service([tmp_path / "run"])))
    assert "modalrec data build" in error_of(plain.post("/items", data={"item_id": "X", "title": "red"}), 409)
    answer = plain.get("/recommend", params={"user": "0", "k": 2}).json()  # ids only, no pictures
    assert answer["items"][0]["title"] is None and answer["items"][0]["image"] is None


def test_a_model_without_vectors_is_scored_exactly(shop: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A model that declares no dot product is scored with ``score``, and offers no similar items."""
    run = load_run(shop["vbpr"])
    score_only = dataclasses.replace(get_model("vbpr"), declared_capabilities=Capabilities(cold_items=True))
    monkeypatch.setitem(registry._REGISTRY, "vbpr", score_only)
    offline = recommend_for_users(run, ["U3"], 4)
    original = type(run.model)

    class ScoreOnly(original):  # type: ignore[valid-type,misc]
        def compute_embeddings(self) -> Embeddings:
            raise NotSupported("scores only")

        def score(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
            vectors = original.compute_embeddings(self)
            return vectors.users[users] @ vectors.items.T

    run.model.__class__ = ScoreOnly
    arm = ServedArm("A", shop["vbpr"], run, IndexConfig())
    found = arm.for_user(run.dataset.user_ids.lookup()["U3"], 4, exclude_seen=True)
    assert run.dataset.item_ids.external[found.ids].tolist() == offline["item_id"].tolist()
    np.testing.assert_allclose(found.scores, offline["score"].to_numpy(), rtol=1e-5)
    with pytest.raises(ServiceError, match="no item vectors"):
        arm.similar(0, 3)


def test_health_metrics_and_docs(client: TestClient) -> None:
    for _ in range(3):
        client.get("/recommend", params={"user": "U1", "k": 2})
    client.get("/recommend", params={"user": "U1"})
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["arms"]["A"]["model"] == "vbpr"
    assert health["arms"]["A"]["index"] == "exact" and health["max_k"] == MAX_K
    metrics = client.get("/metrics").json()["endpoints"]["/recommend"]
    assert metrics["requests"] >= 4 and metrics["2xx"] >= 3 and metrics["4xx"] >= 1
    assert 0 < metrics["p50_ms"] <= metrics["p95_ms"] <= metrics["p99_ms"]
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/recommend", "/similar", "/items", "/feedback", "/health", "/metrics", "/ab/report"} <= set(paths)
    page = client.get("/")
    assert page.status_code == 200 and "<title>modalrec</title>" in page.text
    assert client.get("/static/app.js").status_code == 200


def test_the_service_answers_without_http(shop: dict[str, Path]) -> None:
    """The service is plain Python: the same answers as the app, with no web framework imported."""
    import ast

    import modalrec.serve.service as service_module

    tree = ast.parse(Path(service_module.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported if name.split(".")[0] in ("fastapi", "starlette", "uvicorn")}
    service = load_service([shop["vbpr"]])
    offline = recommend_for_users(load_run(shop["vbpr"]), ["U3"], 4)
    answer = service.recommend("U3", 4)
    assert answer["source"] == "model" and [row["item"] for row in answer["items"]] == offline["item_id"].tolist()
    assert service.recommend("nobody", 3)["source"] == "popular"
    with pytest.raises(ServiceError, match="unknown user"):
        service.history("nobody", 5)
    assert service.health()["arms"]["A"]["embeds_new_items"] is True
