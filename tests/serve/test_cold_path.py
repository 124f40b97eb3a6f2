"""A new item added with POST /items is ranked through the same cold path the evaluator scores cold items with:
for every model that declares ``new_items``, the served score of a new item whose content is that of a cold
catalogue item equals the score the evaluator gives that cold item."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from modalrec.data.build import BuildOptions, ModalitySpec, build_dataset, read_raw_tables
from modalrec.models import available_models
from modalrec.serve.app import create_app
from modalrec.serve.service import load_service
from modalrec.train.run import load_run, resolve_config, train_run

NEW_ITEM_MODELS = [entry.name for entry in available_models() if entry.capabilities.new_items]
FAST = ["train.epochs=2", "train.progress=false", "train.batch_size=16", "data.split=random",
        "data.cold_item_fraction=0.25"]


COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}


def raw_shop(folder: Path) -> tuple[Path, Path]:
    """12 mugs in 3 colours (a picture and a title each); 24 users, each liking every mug of one colour."""
    (folder / "images").mkdir(parents=True)
    items = []
    for item in range(12):
        colour = list(COLOURS)[item // 4]
        noise = np.random.default_rng(item).integers(-20, 20, size=(32, 32, 3))
        pixels = np.clip(np.array(COLOURS[colour]) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / "images" / f"I{item}.png")
        items.append({"item_id": f"I{item}", "title": title_of(item), "image": f"images/I{item}.png"})
    pd.DataFrame(items).to_csv(folder / "items.csv", index=False)
    rows = [{"user_id": f"U{user}", "item_id": f"I{item}"} for user in range(24) for item in range(12)
            if item // 4 == user % 3]
    pd.DataFrame(rows).to_csv(folder / "interactions.csv", index=False)
    return folder / "interactions.csv", folder / "items.csv"


def title_of(item: int) -> str:
    return f"{list(COLOURS)[item // 4]} mug {item}"


@pytest.fixture(scope="module")
def shop_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cold_shop")
    interactions, items = raw_shop(root / "raw")
    specs = [ModalitySpec("image", ("image",), "handcrafted", {}), ModalitySpec("text", ("title",), "tfidf", {})]
    build_dataset(read_raw_tables(interactions, items), specs, root / "built", BuildOptions(progress=False))
    return root / "built"


@pytest.mark.parametrize("name", NEW_ITEM_MODELS)
def test_a_served_new_item_scores_as_the_evaluated_cold_item(name: str, shop_data: Path, tmp_path: Path) -> None:
    data = Path(shutil.copytree(shop_data, tmp_path / "data"))
    run_dir = tmp_path / name
    train_run(resolve_config(data, name, overrides=FAST, seed=1), run_dir)
    run = load_run(run_dir)
    assert run.split.item_roles is not None
    cold = int(np.flatnonzero(run.split.item_roles != 0)[0])
    cold_id = str(run.dataset.item_ids.external[cold])  # "I<n>": its picture and title are in the shop
    evaluated = run.model.eval().score(torch.arange(run.split.num_users))[:, cold].detach()

    client = TestClient(create_app(load_service([run_dir])))
    response = client.post("/items", data={"item_id": "NEW", "title": title_of(int(cold_id[1:])),
                                           "image_path": f"images/{cold_id}.png"})
    assert response.status_code == 201, response.text
    assert response.json()["modalities"] == {"image": "content", "text": "content"}
    for user_id, user in list(run.dataset.user_ids.lookup().items())[:5]:
        answer = client.get("/recommend", params={"user": user_id, "k": 20, "exclude_seen": False}).json()
        served = {row["item"]: row["score"] for row in answer["items"]}
        assert served["NEW"] == pytest.approx(float(evaluated[user]), rel=1e-4, abs=1e-5)
        assert served["NEW"] == pytest.approx(served[cold_id], rel=1e-4, abs=1e-5)
