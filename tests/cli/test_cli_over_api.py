"""The command line is a thin layer over the public API: `recommend`, `explain`, `benchmark` and `demo` give
what `modalrec.api` gives, and call it (checked by replacing the API functions and by reading the handlers)."""

from __future__ import annotations

import ast
import inspect
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import modalrec
import modalrec.api
from modalrec.cli import commands
from modalrec.cli.main import main

TINY = {"num_items": 60, "num_users": 40, "seed": 1, "max_user_interactions": 12, "mean_extra_interactions": 2.0,
        "image_extractor": "handcrafted", "text_extractor": "tfidf"}


@pytest.fixture(scope="module")
def vbpr(tmp_path_factory: pytest.TempPathFactory) -> modalrec.Run:
    shop = modalrec.load_dataset("demo", out=tmp_path_factory.mktemp("shop") / "shop", demo=TINY)
    return modalrec.train(shop, "vbpr", config={"epochs": 2, "progress": False},
                          out=tmp_path_factory.mktemp("runs") / "vbpr")


def cli_csv(capsys: pytest.CaptureFixture[str], *args: str) -> pd.DataFrame:
    assert main(["recommend", *args]) == 0
    return pd.read_csv(io.StringIO(capsys.readouterr().out), dtype={"user_id": str, "item_id": str})


def assert_same_recommendations(printed: pd.DataFrame, api: pd.DataFrame) -> None:
    assert list(printed.columns) == list(api.columns)
    for column in ("user_id", "rank", "item_id", "source", "title", "picture"):
        assert printed[column].tolist() == api[column].tolist(), column
    assert printed["score"].to_numpy() == pytest.approx(api["score"].to_numpy(), rel=1e-5)  # printed with %.6g


# ---------------------------------------------------------------------------------------------
# The same answers

def test_recommend_prints_what_run_recommend_returns(vbpr: modalrec.Run, capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    users = ["U0001", "U0002", "NOBODY"]  # an unknown user gets the popular items in both
    api = modalrec.load_run(vbpr.path).recommend(users, k=4)
    assert {"title", "picture"} <= set(api.columns) and set(api["source"]) == {"model", "popular"}
    assert_same_recommendations(cli_csv(capsys, "--run", str(vbpr.path), "--user", *users, "-k", "4"), api)
    out = tmp_path / "recs.csv"
    assert main(["recommend", "--run", str(vbpr.path), "--user", *users, "-k", "4", "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {len(api)} rows to {out}\n"
    assert_same_recommendations(pd.read_csv(out, dtype={"user_id": str, "item_id": str}), api)


def test_recommend_titles_and_pictures_come_from_the_dataset_unless_items_is_given(
        vbpr: modalrec.Run, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    printed = cli_csv(capsys, "--run", str(vbpr.path), "--user", "U0001", "-k", "3")
    assert printed["title"].notna().all() and all(Path(p).is_file() for p in printed["picture"])
    table = tmp_path / "items.csv"
    pd.DataFrame({"item_id": printed["item_id"], "name": ["a", "b", "c"]}).to_csv(table, index=False)
    given = cli_csv(capsys, "--run", str(vbpr.path), "--user", "U0001", "-k", "3", "--items", str(table))
    assert given["title"].tolist() == ["a", "b", "c"] and "picture" not in given.columns  # no image column there
    assert_same_recommendations(given.assign(picture=None),
                                vbpr.recommend("U0001", k=3, items=table).assign(picture=None))


def test_explain_prints_what_run_explain_returns(vbpr: modalrec.Run, capsys: pytest.CaptureFixture[str]) -> None:
    api = modalrec.load_run(vbpr.path).explain("U0001", k=3)
    assert main(["explain", "--run", str(vbpr.path), "--user", "U0001", "-k", "3", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [list(entry) for entry in printed] == [["rank", "item_id", "score", "contributions", "method", "title",
                                                   "picture"]] * 3
    for entry, row in zip(printed, api.to_dict("records"), strict=True):
        assert (entry["rank"], entry["item_id"], entry["method"], entry["title"], entry["picture"]) == \
            (row["rank"], row["item_id"], row["method"], row["title"], row["picture"])
        assert entry["score"] == row["score"]
        assert entry["contributions"] == {"image": row["image"], "text": row["text"]}

    assert main(["explain", "--run", str(vbpr.path), "--user", "U0001", "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["rank", "item", "score", "image", "text", "title"]
    for line, row in zip(lines[2:], api.to_dict("records"), strict=True):
        assert line.split()[:5] == [str(row["rank"]), row["item_id"], f"{row['score']:.4f}", f"{row['image']:.4f}",
                                    f"{row['text']:.4f}"]
        assert line.endswith(f"  {row['title']}")


def test_benchmark_prints_the_tables_of_the_api_call(vbpr: modalrec.Run, capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    data, settings = vbpr.config["data_path"], ["epochs=1", "progress=false"]
    assert main(["benchmark", "--data", data, "--models", "bpr", "--seeds", "1", "--out", str(tmp_path),
                 *[arg for setting in settings for arg in ("--set", setting)]]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith((tmp_path / "results.md").read_text()) and "bpr" in printed
    table = modalrec.benchmark(data, ["bpr"], 1, overrides=settings, out=tmp_path)  # the same config: reused
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert table.loc["bpr", "recall@20"] == pytest.approx(runs.loc[runs.model == "bpr", "recall@20"].mean())
    assert f"{table.loc['bpr', 'recall@20']:.4f}" in printed


# ---------------------------------------------------------------------------------------------
# The calls: replace the API and see the command print what it returns

class FakeRun:
    """Stands in for modalrec.api.Run: records the calls and returns fixed frames."""

    calls: list[tuple[Any, ...]] = []

    def __init__(self, path: str, *, device: str = "cpu") -> None:
        self.calls.append(("load_run", path, device))

    def recommend(self, users: Any, k: int = 10, *, items: Any = None) -> pd.DataFrame:
        self.calls.append(("recommend", users, k, items))
        return pd.DataFrame({"user_id": ["u"], "rank": [1], "item_id": ["FROM-THE-API"], "score": [0.5],
                             "source": ["model"], "title": ["A title"], "picture": ["/p.png"]})

    def explain(self, user: str, k: int = 10, *, items: Any = None) -> pd.DataFrame:
        self.calls.append(("explain", user, k, items))
        return pd.DataFrame({"rank": [1], "item_id": ["FROM-THE-API"], "score": [0.25], "method": ["ablation"],
                             "audio": [0.125], "title": ["A title"], "picture": [None]})


@pytest.fixture()
def fake_run(monkeypatch: pytest.MonkeyPatch) -> type[FakeRun]:
    FakeRun.calls = []
    monkeypatch.setattr(modalrec.api, "load_run", FakeRun)
    return FakeRun


def test_recommend_calls_load_run_and_run_recommend(fake_run: type[FakeRun],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recommend", "--run", "R", "--user", "a", "b", "-k", "7", "--items", "I.csv",
                 "--device", "cpu"]) == 0
    assert capsys.readouterr().out.splitlines() == ["user_id,rank,item_id,score,source,title,picture",
                                                    "u,1,FROM-THE-API,0.5,model,A title,/p.png"]
    assert fake_run.calls == [("load_run", "R", "cpu"), ("recommend", ["a", "b"], 7, "I.csv")]
    assert main(["recommend", "--run", "R", "--all-users"]) == 0
    assert fake_run.calls[-1] == ("recommend", None, 20, None)


def test_explain_calls_load_run_and_run_explain(fake_run: type[FakeRun], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--run", "R", "--user", "a", "-k", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"rank": 1, "item_id": "FROM-THE-API", "score": 0.25, "contributions": {"audio": 0.125},
         "method": "ablation", "title": "A title", "picture": None}]
    assert fake_run.calls == [("load_run", "R", "cpu"), ("explain", "a", 2, None)]


def test_benchmark_calls_the_api_and_prints_its_tables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    calls = []

    def fake_benchmark(dataset: Any, models: Any, seeds: Any = 3, **options: Any) -> pd.DataFrame:
        calls.append((dataset, list(models), seeds, options))
        Path(options["out"], "results.md").write_text("| model | recall@20 |\n| FROM-THE-API | 1 |\n")
        return pd.DataFrame()

    monkeypatch.setattr(modalrec.api, "benchmark", fake_benchmark)
    assert main(["benchmark", "--data", "D", "--models", "bpr,vbpr", "--seeds", "2", "--out", str(tmp_path),
                 "--config", "c.toml", "--set", "epochs=1"]) == 0
    assert "| FROM-THE-API | 1 |" in capsys.readouterr().out
    assert calls == [(Path("D"), ["bpr", "vbpr"], 2,
                      {"config": "c.toml", "overrides": ["epochs=1"], "out": str(tmp_path)})]


def test_benchmark_protocol_calls_the_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    calls = []

    def fake_protocol(dataset: Any, models: Any, protocol: str, seeds: Any = 3, **options: Any) -> pd.DataFrame:
        calls.append((dataset, list(models), protocol, seeds, options))
        Path(options["out"], "results.md").write_text("PROTOCOL TABLES FROM THE API\n")
        return pd.DataFrame()

    monkeypatch.setattr(modalrec.api, "benchmark_protocol", fake_protocol)
    monkeypatch.setattr("sys.argv", ["modalrec", "benchmark", "--protocol", "sparsity", "(as typed)"])
    assert main(["benchmark", "--protocol", "sparsity", "--data", "D", "--models", "bpr", "--seeds", "1",
                 "--fractions", "0.5,1", "--collect", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("PROTOCOL TABLES FROM THE API\n")
    assert calls == [(Path("D"), ["bpr"], "sparsity", 1,
                      {"config": None, "overrides": [], "out": tmp_path, "fractions": [0.5, 1.0], "collect": True,
                       "command": "modalrec benchmark --protocol sparsity '(as typed)'"})]


def test_demo_calls_the_api(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    calls = []

    def fake_demo(out: Any, models: Any, **options: Any) -> str:
        calls.append((out, list(models), options))
        return "LEADERBOARD FROM THE API"

    monkeypatch.setattr(modalrec.api, "run_demo", fake_demo)
    assert main(["demo", "--out", "D", "--models", "bpr,lens", "--fast-features", "--set", "epochs=1"]) == 0
    assert capsys.readouterr().out == "LEADERBOARD FROM THE API\n"
    assert calls == [("D", ["bpr", "lens"], {"seed": 2024, "fast_features": True, "config": None,
                                             "overrides": ["epochs=1"]})]


def test_the_demo_trains_the_api_default_models_including_the_best_cold_model(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert inspect.signature(modalrec.api.run_demo).parameters["models"].default == modalrec.api.DEMO_MODELS
    calls = []
    monkeypatch.setattr(modalrec.api, "run_demo", lambda out, models, **options: calls.append(list(models)) or "")
    assert main(["demo", "--out", "D"]) == 0
    assert calls == [list(modalrec.api.DEMO_MODELS)] == [["bpr", "lightgcn", "vbpr", "contentmf"]]


HANDLERS = ("_recommend", "_explain", "_benchmark", "_protocol_benchmark", "_demo", "_evaluate")
ALLOWED = {"modalrec.api", "modalrec.io_utils", "modalrec.errors", "modalrec.train.run"}


def test_the_handlers_reach_the_library_only_through_the_api() -> None:
    """Each handler imports from modalrec only the API (and file helpers, errors, and evaluate's file name):
    a handler calling an internal directly would give the shell other answers than Python. (``benchmark
    --render`` only rewrites tables from a results file, in ``_render_protocol``.)"""
    tree = ast.parse(Path(commands.__file__).read_text(encoding="utf-8"))
    handlers = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in HANDLERS}
    assert set(handlers) == set(HANDLERS)
    for name, handler in handlers.items():
        imported = {node.module for node in ast.walk(handler) if isinstance(node, ast.ImportFrom)}
        assert "modalrec.api" in imported, name
        assert imported <= ALLOWED, f"{name} imports {sorted(imported - ALLOWED)}"
        if name == "_evaluate":
            names = {alias.name for node in ast.walk(handler) if isinstance(node, ast.ImportFrom)
                     and node.module == "modalrec.train.run" for alias in node.names}
            assert names == {"METRICS_FILE"}


# ---------------------------------------------------------------------------------------------
# What the API gained for the command line

def test_run_demo_passes_the_commands_settings_on(monkeypatch: pytest.MonkeyPatch) -> None:
    import modalrec.demo

    calls = []
    monkeypatch.setattr(modalrec.demo, "run_demo", lambda out, models, **options: calls.append((out, models, options))
                        or "board")
    assert modalrec.run_demo("d", ["bpr"], fast_features=True, config={"epochs": 3}, overrides=["seed=1"]) == "board"
    assert calls == [(Path("d"), ["bpr"], {"seed": 2024, "overrides": ["epochs=3", "seed=1"], "config_file": None,
                                           "shop": modalrec.demo.FAST_SHOP})]


def test_overrides_follow_the_config_and_a_bare_string_is_refused(vbpr: modalrec.Run, tmp_path: Path) -> None:
    from modalrec.errors import ConfigError

    run = modalrec.train(vbpr.config["data_path"], "bpr", config={"epochs": 3}, out=tmp_path / "bpr",
                         overrides=["epochs=1", "progress=false", "model.embedding_dim=8"])
    assert (run.config["train"]["epochs"], run.config["model"]["embedding_dim"]) == (1, 8)
    with pytest.raises(ConfigError, match="expected a list of KEY=VALUE strings"):
        modalrec.train(vbpr.config["data_path"], "bpr", out=tmp_path / "b", overrides="epochs=1")


def test_only_the_string_demo_names_the_demo_shop() -> None:
    from modalrec.api import _as_dataset_path

    assert _as_dataset_path(Path("demo")) == (Path("demo"), {})


def test_benchmark_protocol_returns_the_summary_of_its_results_file(vbpr: modalrec.Run, tmp_path: Path) -> None:
    table = modalrec.benchmark_protocol(vbpr.config["data_path"], ["bpr"], "sparsity", [1], out=tmp_path,
                                        fractions=[0.5, 1], overrides=["epochs=1", "progress=false"])
    assert table[["model", "fraction", "task", "seeds_ok"]].values.tolist() == [["bpr", 0.5, "overall", 1],
                                                                                ["bpr", 1.0, "overall", 1]]
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["command"].startswith("modalrec.benchmark_protocol(") and "fractions=[0.5, 1.0]" in \
        document["command"]
    recall = [run["tasks"]["overall"]["recall@20"] for run in document["runs"]]
    assert table["recall@20_mean"].tolist() == pytest.approx(recall)
