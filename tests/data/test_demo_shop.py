"""Tests of the synthetic demo shop."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from modalrec.data.demo_shop import MATERIALS, ShopConfig, build_demo_dataset, generate_shop
from modalrec.errors import ConfigError

# Same draw-to-catalogue ratio as the default config, at a fraction of the size, with the fast extractors.
FAST = {"image_extractor": "handcrafted", "text_extractor": "tfidf"}
SMALL = ShopConfig(num_items=200, num_users=400, seed=5, max_user_interactions=20, mean_extra_interactions=5.0, **FAST)
TINY = ShopConfig(num_items=60, num_users=30, seed=1, max_user_interactions=12, mean_extra_interactions=2.0, **FAST)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_shop(tmp_path_factory.mktemp("shop"), SMALL)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB"))


def _inter(shop: Path) -> pd.DataFrame:
    return pd.read_csv(shop / "shop.inter", sep="\t")


def test_items_table_and_pictures(shop: Path) -> None:
    items = pd.read_csv(shop / "items.csv", dtype=str)
    assert list(items.columns) == ["item_id", "title", "description", "image"]
    assert len(items) == SMALL.num_items and items["item_id"].is_unique
    assert items["item_id"].str.fullmatch(r"SKU-\d{5}").all()
    assert (items["image"] == "images/" + items["item_id"] + ".png").all()
    assert items["description"].apply(lambda text: any(material in text for material in MATERIALS)).all()
    pictures = [_pixels(shop / path) for path in items["image"].head(20)]
    assert {picture.shape for picture in pictures} == {(SMALL.image_size, SMALL.image_size, 3)}
    assert not np.array_equal(pictures[0], pictures[1])


def test_mmrec_layout_matches_raw_files(shop: Path) -> None:
    assert (shop / "shop.inter").read_text().splitlines()[0] == "userID\titemID\trating\ttimestamp\tx_label"
    inter = _inter(shop)
    user_map = pd.read_csv(shop / "u_id_mapping.csv", sep="\t", dtype={"user_id": str})
    item_map = pd.read_csv(shop / "i_id_mapping.csv", sep="\t", dtype={"item_id": str})
    items = pd.read_csv(shop / "items.csv", dtype=str)
    assert list(user_map.columns) == ["user_id", "userID"] and list(item_map.columns) == ["item_id", "itemID"]
    assert item_map["item_id"].tolist() == items["item_id"].tolist()
    assert item_map["itemID"].tolist() == list(range(SMALL.num_items))
    assert user_map["userID"].tolist() == list(range(SMALL.num_users))

    raw = pd.read_csv(shop / "interactions.csv", dtype={"user_id": str, "item_id": str})
    assert list(raw.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert raw["user_id"].str.fullmatch(r"U\d{4}").all()
    mapped_users = raw["user_id"].map(dict(zip(user_map["user_id"], user_map["userID"])))
    mapped_items = raw["item_id"].map(dict(zip(item_map["item_id"], item_map["itemID"])))
    np.testing.assert_array_equal(mapped_users, inter["userID"])
    np.testing.assert_array_equal(mapped_items, inter["itemID"])
    np.testing.assert_array_equal(raw[["rating", "timestamp"]], inter[["rating", "timestamp"]])


def test_features_have_one_row_per_item(shop: Path) -> None:
    for name in ("image_feat.npy", "text_feat.npy"):
        features = np.load(shop / name)
        assert features.dtype == np.float32 and features.shape[0] == SMALL.num_items
        assert np.isfinite(features).all()


def test_interactions_are_well_formed(shop: Path) -> None:
    inter = _inter(shop)
    assert set(inter["x_label"]) == {0, 1, 2}
    assert inter["rating"].between(1, 5).all() and inter["rating"].nunique() == 5
    assert inter["timestamp"].is_monotonic_increasing and inter["timestamp"].is_unique
    assert not inter.duplicated(["userID", "itemID"]).any()
    assert set(inter["itemID"]) == set(range(SMALL.num_items))
    per_user = inter.groupby("userID").size()
    assert per_user.index.tolist() == list(range(SMALL.num_users))
    assert per_user.min() >= SMALL.min_user_interactions


def test_split_rules(shop: Path) -> None:
    inter = _inter(shop)
    labels = inter.pivot_table(index="userID", columns="x_label", values="itemID", aggfunc="size", fill_value=0)
    assert labels[0].min() >= 2 and labels[1].min() >= 1 and labels[2].min() >= 1
    trained_items = set(inter.loc[inter["x_label"] == 0, "itemID"])
    cold_items = set(inter["itemID"]) - trained_items
    assert len(cold_items) == SMALL.num_cold_items
    cold_rows = inter[inter["itemID"].isin(cold_items)]
    assert (cold_rows["x_label"] == 2).all()
    assert 0.7 < np.mean(inter["x_label"] == 0) < 0.85


def test_same_seed_reproduces_and_other_seed_differs(shop: Path, tmp_path: Path) -> None:
    again = generate_shop(tmp_path / "again", SMALL)
    for name in ("shop.inter", "items.csv", "interactions.csv"):
        assert (again / name).read_bytes() == (shop / name).read_bytes()
    for name in ("image_feat.npy", "text_feat.npy"):
        np.testing.assert_array_equal(np.load(again / name), np.load(shop / name))
    other = generate_shop(tmp_path / "other", replace(SMALL, seed=SMALL.seed + 1))
    assert (other / "shop.inter").read_bytes() != (shop / "shop.inter").read_bytes()
    assert not np.array_equal(np.load(other / "image_feat.npy"), np.load(shop / "image_feat.npy"))


def _ranking_auc(inter: pd.DataFrame, features: np.ndarray) -> tuple[float, float]:
    """Mean share of all items that a user's test item outranks, by similarity to their train items.

    Returns the mean over all test interactions and over those with cold items.
    """
    features = (features - features.mean(axis=0)) / (features.std(axis=0) + 1e-6)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    train, test = inter[inter["x_label"] == 0], inter[inter["x_label"] == 2]
    profiles = np.zeros((inter["userID"].max() + 1, features.shape[1]))
    np.add.at(profiles, train["userID"].to_numpy(), features[train["itemID"].to_numpy()])
    scores = profiles[test["userID"].to_numpy()] @ features.T
    positive = scores[np.arange(len(test)), test["itemID"].to_numpy()]
    auc = (scores < positive[:, None]).mean(axis=1)
    cold = ~test["itemID"].isin(train["itemID"]).to_numpy()
    return float(auc.mean()), float(auc[cold].mean())


def test_content_features_predict_held_out_items(shop: Path) -> None:
    inter = _inter(shop)
    image, text = np.load(shop / "image_feat.npy"), np.load(shop / "text_feat.npy")
    image_auc, _ = _ranking_auc(inter, image)
    text_auc, _ = _ranking_auc(inter, text)
    both_auc, cold_auc = _ranking_auc(inter, np.hstack([image, text]))
    assert image_auc > 0.57 and text_auc > 0.57  # chance is 0.5
    assert both_auc > 0.6 and cold_auc > 0.58


def test_build_demo_dataset_reuses_matching_output(tmp_path: Path) -> None:
    out_dir = build_demo_dataset(tmp_path / "demo", TINY)
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["config"]["seed"] == TINY.seed
    assert manifest["modalities"]["image"]["extractor"] == "handcrafted"
    assert manifest["modalities"]["text"]["extractor"] == "tfidf"
    assert (ShopConfig().image_extractor, ShopConfig().text_extractor) == ("efficientnet-lite0", "minilm")
    assert manifest["counts"]["interactions"] == len(_inter(out_dir))
    first_write = (out_dir / "shop.inter").stat().st_mtime_ns

    build_demo_dataset(out_dir, TINY)
    assert (out_dir / "shop.inter").stat().st_mtime_ns == first_write

    changed = replace(TINY, seed=TINY.seed + 1)
    build_demo_dataset(out_dir, changed)
    assert json.loads((out_dir / "manifest.json").read_text())["config"]["seed"] == changed.seed
    assert not list(out_dir.glob(".*.tmp"))


@pytest.mark.parametrize(
    "overrides",
    [{"cold_item_fraction": 1.0}, {"min_user_interactions": 2}, {"num_items": 30}, {"temperature": 0.0}],
)
def test_config_rejects_impossible_values(overrides: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        ShopConfig(**overrides)
