"""The public Python API (modalrec.api, exported by the package)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import modalrec
from modalrec.errors import ConfigError, ModalrecError, RunFolderError

FAST = {"image_extractor": "handcrafted", "text_extractor": "tfidf"}
TINY = {"num_items": 60, "num_users": 40, "seed": 1, "max_user_interactions": 12,
        "mean_extra_interactions": 2.0, **FAST}
QUICK = {"epochs": 2, "progress": False}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> modalrec.Dataset:
    return modalrec.load_dataset("demo", out=tmp_path_factory.mktemp("api") / "shop", demo=TINY)


@pytest.fixture(scope="module")
def vbpr(shop: modalrec.Dataset, tmp_path_factory: pytest.TempPathFactory) -> modalrec.Run:
    return modalrec.train(shop, "vbpr", config=QUICK, out=tmp_path_factory.mktemp("runs") / "vbpr")


def test_importing_the_package_or_its_errors_loads_neither_torch_nor_pandas() -> None:
    code = "import sys, modalrec, modalrec.errors; print('torch' in sys.modules, 'pandas' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.split() == ["False", "False"]


def test_the_package_exports_the_api() -> None:
    for name in ("Dataset", "Run", "available_models", "benchmark", "benchmark_protocol", "load_dataset", "load_run",
                 "run_demo", "train"):
        assert name in dir(modalrec)
    with pytest.raises(AttributeError, match="no attribute 'fit'"):
        modalrec.fit  # type: ignore[attr-defined]  # noqa: B018


def test_train_is_both_the_subpackage_and_the_function() -> None:
    import modalrec.train.run

    assert callable(modalrec.train)
    assert modalrec.train.run.load_run is not None  # type: ignore[attr-defined]


def test_available_models_lists_the_registry() -> None:
    from modalrec.models.registry import available_models

    table = modalrec.available_models()
    assert list(table.index) == [entry.name for entry in available_models()]
    assert bool(table.loc["vbpr", "uses_content"]) and not bool(table.loc["bpr", "uses_content"])


def test_load_dataset_reads_the_demo_shop(shop: modalrec.Dataset) -> None:
    assert (shop.num_users, shop.num_items) == (40, 60)
    assert shop.modalities == ("image", "text")
    assert "users" in str(shop) and shop.path.is_dir()
    items = shop.items()
    assert len(items) == 60 and "title" in items.columns


def test_load_dataset_rejects_unknown_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="demo.colours"):
        modalrec.load_dataset("demo", out=tmp_path, demo={"colours": 3})
    with pytest.raises(ConfigError, match="data.splitt"):
        modalrec.load_dataset(tmp_path, data={"splitt": "random"})


def test_load_dataset_applies_data_settings(shop: modalrec.Dataset) -> None:
    filtered = modalrec.load_dataset(shop.path, data={"min_user_interactions": 12})
    assert filtered.num_users < shop.num_users
    assert filtered.data == {"min_user_interactions": 12}


def test_train_writes_a_run_that_evaluates_to_its_metrics(vbpr: modalrec.Run) -> None:
    recorded = json.loads((vbpr.path / "metrics.json").read_text())
    assert vbpr.model_name == "vbpr" and vbpr.metrics == recorded
    assert vbpr.config["train"]["epochs"] == 2
    again = vbpr.evaluate("test")
    for name, value in recorded["test"].items():
        assert again[name] == pytest.approx(value, abs=1e-6)
    assert len(vbpr.history()) == 2
    with pytest.raises(ModalrecError, match="split must be"):
        vbpr.evaluate("train")


def test_recommend_gives_unseen_items_in_original_ids_with_titles(vbpr: modalrec.Run, shop: modalrec.Dataset) -> None:
    from modalrec.train.run import load_run

    rows = vbpr.recommend(["U0001", "U0002"], k=4)
    assert list(rows.columns[:4]) == ["user_id", "rank", "item_id", "score"]
    assert rows.groupby("user_id").size().to_dict() == {"U0001": 4, "U0002": 4}
    titles = shop.items()["title"]
    assert list(rows["title"]) == [titles[item] for item in rows["item_id"]]
    assert all(Path(picture).is_file() for picture in rows["picture"])
    run = load_run(vbpr.path)
    user = run.dataset.user_ids.indices_of(["U0001"])[0]
    seen = set(run.dataset.item_ids.external[run.split.matrix("train")[user].indices])
    assert not seen & set(rows.loc[rows.user_id == "U0001", "item_id"])
    assert list(vbpr.recommend("U0001", k=4)["item_id"]) == list(rows.loc[rows.user_id == "U0001", "item_id"])
    with pytest.raises(ModalrecError, match="k must be"):
        vbpr.recommend("U0001", k=0)
    assert set(rows["source"]) == {"model"}


def test_recommend_gives_unknown_and_untrained_users_the_popular_items(tmp_path: Path) -> None:
    """As the CLI's recommend and the service do: a user id not in the data, and user 9 (valid and test
    rows only, so the model learned nothing about them), get the most-trained items with source 'popular'."""
    data = tmp_path / "data"
    data.mkdir()
    train = [(u, 5) for u in range(6)] + [(u, 3) for u in range(5)] + [(u, 1) for u in range(4)]
    train += [(u, 2 if u < 3 else 4) for u in range(6)]  # training counts: 5: 6, 3: 5, 1: 4, 2: 3, 4: 3
    held_out = [(u, 4 if u < 3 else 2, label) for u in range(6) for label in (1, 2)] + [(9, 1, 1), (9, 2, 2)]
    lines = [f"{u}\t{i}\t0" for u, i in train] + [f"{u}\t{i}\t{label}" for u, i, label in held_out]
    (data / "d.inter").write_text("userID\titemID\tx_label\n" + "\n".join(lines) + "\n")
    run = modalrec.train(data, "bpr", config={"epochs": 1, "progress": False}, out=tmp_path / "run")

    rows = run.recommend(["0", "9", "NOBODY"], k=3)
    by_user = {user: group for user, group in rows.groupby("user_id", sort=False)}
    assert list(by_user) == ["0", "9", "NOBODY"]
    assert set(by_user["0"]["source"]) == {"model"}
    for user in ("9", "NOBODY"):
        assert set(by_user[user]["source"]) == {"popular"}
        assert list(by_user[user]["rank"]) == [1, 2, 3]
        assert list(by_user[user]["item_id"].astype(str)) == ["5", "3", "1"]
        assert list(by_user[user]["score"]) == [6, 5, 4]
    assert list(run.recommend(None, k=3).query("user_id == '9'")["source"]) == ["popular"] * 3


def test_recommend_takes_titles_from_another_items_table(vbpr: modalrec.Run, tmp_path: Path) -> None:
    top = vbpr.recommend("U0001", k=3)
    table = tmp_path / "items.csv"
    pd.DataFrame({"item_id": top["item_id"], "name": ["a", "b", "c"]}).to_csv(table, index=False)
    assert list(vbpr.recommend("U0001", k=3, items=table)["title"]) == ["a", "b", "c"]
    assert "picture" not in vbpr.recommend("U0001", k=3, items=table).columns  # the table has no image column
    with pytest.raises(ModalrecError, match="not found"):
        vbpr.recommend("U0001", items=tmp_path / "missing.csv")
    pd.DataFrame({"item_id": ["X1"], "title": ["x"]}).to_csv(table, index=False)
    with pytest.raises(ModalrecError, match="none of the run's"):
        vbpr.recommend("U0001", items=table)


def test_explain_gives_one_column_per_modality(vbpr: modalrec.Run) -> None:
    rows = vbpr.explain("U0001", k=3)
    assert list(rows["rank"]) == [1, 2, 3]
    assert {"image", "text", "method", "title"} <= set(rows.columns)
    assert np.isfinite(rows[["image", "text"]].to_numpy()).all()
    assert list(rows["item_id"]) == list(vbpr.recommend("U0001", k=3)["item_id"])


def test_config_mappings_nested_or_bare_and_bad_keys(shop: modalrec.Dataset, tmp_path: Path) -> None:
    run = modalrec.train(shop, "bpr", config={"train": {"epochs": 1, "progress": False}, "model.embedding_dim": 8},
                         out=tmp_path / "bpr", seed=7)
    assert (run.config["train"]["epochs"], run.config["model"]["embedding_dim"], run.config["seed"]) == (1, 8, 7)
    with pytest.raises(ConfigError, match="epoch"):
        modalrec.train(shop, "bpr", config={"epoch": 1}, out=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    with pytest.raises(RunFolderError, match="already holds a run"):
        modalrec.train(shop, "bpr", config={"epochs": 1}, out=tmp_path / "bpr")


def test_load_run_refuses_a_folder_without_a_run(tmp_path: Path) -> None:
    with pytest.raises(RunFolderError, match="not a run folder"):
        modalrec.load_run(tmp_path)


def test_benchmark_returns_one_row_per_model(shop: modalrec.Dataset, tmp_path: Path) -> None:
    table = modalrec.benchmark(shop, ["bpr", "vbpr"], seeds=[1, 2], config={"epochs": 1, "progress": False},
                               out=tmp_path)
    assert sorted(table.index) == ["bpr", "vbpr"]
    assert (table["seeds_ok"] == 2).all() and {"recall@20", "recall@20_std"} <= set(table.columns)
    assert (tmp_path / "results.md").is_file()
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert table.loc["vbpr", "recall@20"] == pytest.approx(runs.loc[runs.model == "vbpr", "recall@20"].mean())


def test_interactions_lists_a_users_items_per_split(vbpr: modalrec.Run) -> None:
    from modalrec.train.run import load_run

    run = load_run(vbpr.path)
    user = run.dataset.user_ids.indices_of(["U0001"])[0]
    for split in ("train", "test"):
        rows = vbpr.interactions("U0001", split)
        expected = sorted(run.dataset.item_ids.external[run.split.matrix(split)[user].indices])
        assert sorted(rows["item_id"]) == expected and len(expected) > 0
        assert rows["title"].notna().all()
    with pytest.raises(ModalrecError, match="split must be"):
        vbpr.interactions("U0001", "all")
    with pytest.raises(ModalrecError, match="NOBODY"):
        vbpr.interactions("NOBODY")


def test_titles_are_found_from_another_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modalrec.serve.items import item_details, read_content_source

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    shop = modalrec.load_dataset("demo", out="shop", demo=TINY)  # a relative path, as a user types it
    monkeypatch.chdir(tmp_path / "elsewhere")
    ids = list(shop.items().index)
    details = item_details(read_content_source(shop.path), ids)
    assert len(ids) == 60 and details["title"].notna().all()
    assert all(Path(picture).is_file() for picture in details["image"])
