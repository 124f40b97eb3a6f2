"""bench/sparsity_valid.py: validation and test recall@20 of sparsity-protocol runs, per setting."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

from tests.conftest import load_script

REPO = Path(__file__).resolve().parents[2]


def load() -> ModuleType:
    return load_script(REPO / "bench" / "sparsity_valid.py", "_bench_sparsity_valid")


def run(model: str, seed: int, valid: float, test: float, error: str = "") -> dict[str, object]:
    return {"model": model, "seed": seed, "fraction": 0.1, "error": error, "valid": {"overall": valid},
            "tasks": {"overall": {"recall@20": test, "ndcg@20": 0.0}}}


def test_collect_reads_each_successful_run_and_render_compares_with_the_reference(tmp_path: Path) -> None:
    bench = tmp_path / "bench"
    bench.mkdir()
    runs = [run("lightgcn", 1, 0.10, 0.08), run("lightgcn", 2, 0.20, 0.12), run("freedom", 1, 0.18, 0.11),
            run("freedom", 2, 0.18, 0.09), {"model": "freedom", "seed": 3, "fraction": 0.1, "error": "failed"}]
    (bench / "results.json").write_text(json.dumps({"protocol": "sparsity", "runs": runs}))
    out, script = tmp_path / "probe.jsonl", load()
    assert script.collect("lightgcn", bench, out, ["lightgcn"]) == 2
    assert script.collect("freedom x=1", bench, out, ["freedom"]) == 2  # the failed run is left out
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[2] == {"setting": "freedom x=1", "model": "freedom", "fraction": 0.1, "seed": 1,
                        "valid": 0.18, "test": 0.11}
    table = script.render(out, "lightgcn").splitlines()
    assert table[0] == "| setting | 10% valid | 10% test | runs |"
    assert table[2] == "| lightgcn | 0.1500 | 0.1000 | 2 |"
    assert table[3] == "| freedom x=1 | 0.1800 (+20.0%) | 0.1000 (+0.0%) | 2 |"
