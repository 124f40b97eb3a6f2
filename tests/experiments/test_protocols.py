"""``benchmark --protocol cold-items|sparsity``: tasks per model, paired tests, tables rendered from results.json."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from modalrec.cli.main import main
from modalrec.errors import ConfigError
from modalrec.experiments import protocols
from tests.conftest import block_dataset, load_script, write_mmrec

FAST = ["train.epochs=2", "train.progress=false", "train.batch_size=64", "data.split=random"]


@pytest.fixture()
def blocks(tmp_path: Path) -> Path:
    rows, features = block_dataset(num_users=30, num_items=30)
    return write_mmrec(tmp_path / "d", [(u, i, 0) for u, i, _ in rows], features={"image": features})


def test_cold_items_protocol_reports_each_task_and_renders_from_the_result_file(blocks: Path, tmp_path: Path) -> None:
    out = tmp_path / "cold"
    document = protocols.run_protocol("cold-items", blocks, ["bpr", "vbpr"], [1, 2], out, overrides=FAST)
    assert "data.cold_item_fraction=0.2" in document["overrides"]
    tasks = {(r["model"], r["seed"]): set(r["tasks"]) for r in document["runs"]}
    assert tasks[("vbpr", 1)] == {"cold", "warm", "overall"} and tasks[("bpr", 2)] == {"warm", "overall"}
    assert all(set(r["valid"]) == set(r["tasks"]) for r in document["runs"])  # each task's own validation
    run = json.loads((out / "runs" / "vbpr-seed1" / "metrics.json").read_text())
    vbpr_valid = next(r["valid"] for r in document["runs"] if (r["model"], r["seed"]) == ("vbpr", 1))
    assert vbpr_valid == {task: parts["valid"]["recall@20"] for task, parts in run["tasks"].items()}
    assert document["tests"]["warm"]["best"] in ("bpr", "vbpr") and "cold" in document["tests"]
    markdown = (out / "results.md").read_text()
    bpr_row = next(line for line in markdown.splitlines() if line.startswith("| bpr |"))
    assert bpr_row.split(" | ")[1] == "—"  # no cold recall for an ID-only model
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["model"], r["task"]) for r in rows} == {("bpr", "warm"), ("bpr", "overall"), ("vbpr", "cold"),
                                                       ("vbpr", "warm"), ("vbpr", "overall")}
    (out / "results.md").unlink()
    assert main(["benchmark", "--protocol", "cold-items", "--out", str(out), "--render"]) == 0
    assert (out / "results.md").read_text() == markdown  # the tables come from results.json alone
    again = protocols.run_protocol("cold-items", blocks, ["bpr", "vbpr"], [1, 2], out, overrides=FAST)
    assert again["runs"] == document["runs"]  # finished runs are read back, not retrained


def test_sparsity_protocol_trains_each_fraction_and_draws_the_chart(blocks: Path, tmp_path: Path) -> None:
    out = tmp_path / "sparse"
    document = protocols.run_protocol("sparsity", blocks, ["lightgcn", "vbpr"], [1], out,
                                      overrides=[*FAST, "vbpr:train.epochs=1"], fractions=[0.25, 1.0])
    assert {r["model"]: r["epochs"] for r in document["runs"]} == {"lightgcn": 2, "vbpr": 1}  # MODEL:key=value
    lightgcn = json.loads((out / "runs" / "lightgcn-frac1-seed1" / "metrics.json").read_text())
    full = next(r for r in document["runs"] if (r["model"], r["fraction"]) == ("lightgcn", 1.0))
    assert full["valid"] == {"overall": lightgcn["valid"]["recall@20"]}  # what bench/sparsity_valid.py reads
    assert sorted((r["model"], r["fraction"]) for r in document["runs"]) == [
        ("lightgcn", 0.25), ("lightgcn", 1.0), ("vbpr", 0.25), ("vbpr", 1.0)]
    assert set(document["tests"]) == {"0.25", "1"}
    versus = document["tests"]["1"]["versus_reference"]["vbpr"]  # every model against the first, lightgcn
    assert document["tests"]["1"]["reference"] == "lightgcn" and set(versus) >= {"relative", "t_test_p"}
    assert (out / "sparsity.png").read_bytes()[:4] == b"\x89PNG"
    splits = {f: np.load(out / "runs" / f"vbpr-frac{f:g}-seed1" / "split.npz") for f in (0.25, 1.0)}
    assert len(splits[0.25]["train_users"]) < len(splits[1.0]["train_users"])
    assert np.array_equal(splits[0.25]["test_items"], splits[1.0]["test_items"])
    markdown = (out / "results.md").read_text()
    assert "| 25% of training | 100% of training |" in markdown and "Each model against lightgcn" in markdown
    saved = json.loads((out / "results.json").read_text())
    assert saved["protocol"] == "sparsity" and saved["fractions"] == [0.25, 1.0]


def test_protocol_input_errors(blocks: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--fractions"):
        protocols.run_protocol("sparsity", blocks, ["bpr"], [1], tmp_path / "x", fractions=[0.0, 1.0])
    with pytest.raises(ConfigError, match="MODEL:key=value names vbpr"):
        protocols.run_protocol("sparsity", blocks, ["bpr"], [1], tmp_path / "x", overrides=["vbpr:train.epochs=1"])
    with pytest.raises(ConfigError, match="--protocol"):
        protocols.run_protocol("warm-users", blocks, ["bpr"], [1], tmp_path / "x")
    assert main(["benchmark", "--protocol", "sparsity", "--out", str(tmp_path / "none"), "--render"]) != 0


def test_collect_reports_unfinished_runs_without_training(blocks: Path, tmp_path: Path) -> None:
    document = protocols.run_protocol("cold-items", blocks, ["bpr"], [1, 2], tmp_path / "c", overrides=FAST,
                                      train=False)
    assert [r["error"].startswith("not run") for r in document["runs"]] == [True, True]
    assert not (tmp_path / "c" / "runs").exists() and "bpr seed 2" in (tmp_path / "c" / "results.md").read_text()


def test_cold_start_page_tables_are_the_rendered_result_files() -> None:
    module = load_script(Path(__file__).parents[2] / "docs" / "benchmarks" / "cold_start_tables.py", "cold_start_tables")
    page = module.PAGE.read_text(encoding="utf-8")
    for name in ("cold-items", "cold-items-uncapped", "sparsity", "sparsity-full"):
        assert f"<!-- generated: {name} -->" in page and f"<!-- end: {name} -->" in page
    assert module.generated_page(page) == page  # rerun docs/benchmarks/cold_start_tables.py after new results


def test_collect_takes_a_run_recorded_before_a_key_with_a_default_existed(blocks: Path, tmp_path: Path) -> None:
    """A finished run whose config.json lacks a key added later (filled with the default it ran with) is
    collected, not reported as unfinished; a run with a different value is not."""
    out = tmp_path / "c"
    protocols.run_protocol("cold-items", blocks, ["bpr"], [1], out, overrides=FAST)
    config_file = out / "runs" / "bpr-seed1" / "config.json"
    recorded = json.loads(config_file.read_text())
    del recorded["train"]["lr_schedule"]  # as written before train.lr_schedule existed (its default: constant)
    config_file.write_text(json.dumps(recorded))
    document = protocols.run_protocol("cold-items", blocks, ["bpr"], [1], out, overrides=FAST, train=False)
    assert document["runs"][0]["error"] == ""
    recorded["train"]["lr_schedule"] = "cosine"
    config_file.write_text(json.dumps(recorded))
    document = protocols.run_protocol("cold-items", blocks, ["bpr"], [1], out, overrides=FAST, train=False)
    assert document["runs"][0]["error"].startswith("not run")
