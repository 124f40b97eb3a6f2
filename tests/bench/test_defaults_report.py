"""bench/defaults.py: epochs to a threshold, the summary table over paired runs, the generated notes section."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import load_script

REPO = Path(__file__).resolve().parents[2]


def load() -> ModuleType:
    return load_script(REPO / "bench" / "defaults.py", "_bench_defaults")


def run(setting: str, split_seed: int, seed: int, curve: list[float | None], test: float) -> dict[str, Any]:
    best = max(v for v in curve if v is not None)
    return {"setting": setting, "split_seed": split_seed, "seed": seed, "valid_curve": curve,
            "best_epoch": curve.index(best) + 1, "valid": {"recall@20": best}, "test": {"recall@20": test}}


def test_first_epoch_reaching_counts_from_one_and_skips_unevaluated_epochs() -> None:
    defaults = load()
    assert defaults.first_epoch_reaching([0.1, None, 0.3, 0.5], 0.3) == 3
    assert defaults.first_epoch_reaching([0.1, 0.2], 0.3) is None


def test_the_table_compares_each_setting_on_the_references_runs_and_thresholds() -> None:
    defaults = load()
    runs = [
        run("default", 1, 1, [0.1, 0.2, 0.3, 0.4], 0.30),  # split 1: the reference's mean best is 0.4
        run("default", 1, 2, [0.1, 0.3, 0.4, 0.4], 0.32),  # ... and its best run 0.4 too
        run("fast", 1, 1, [0.39, 0.41, 0.42, 0.42], 0.34),  # 0.388 at epoch 1, 0.4 at epoch 2
        run("fast", 1, 2, [0.2, 0.3, 0.35, 0.36], 0.30),  # never reaches 0.388
        run("fast", 9, 1, [0.9, 0.9, 0.9, 0.9], 0.90),  # a re-split the reference did not run: left out
    ]
    table = defaults.report_table(runs, "default").splitlines()
    # best epochs 4 and 3; 0.97 x 0.4 first reached at epochs 4 and 3
    assert table[2] == ("| default | 2 | 0.4000 ± 0.0000 | 0.3100 ± 0.0141 | 4 ± 1 | 4 ± 1 (2/2) | 4 ± 1 (2/2) "
                        "| 4 ± 1 (2/2) |")
    assert table[3] == "| fast | 2 | 0.3900 ± 0.0424 | 0.3200 ± 0.0283 | 4 ± 1 | 1 ± 0 (1/2) | 2 ± 0 (1/2) | 2 ± 0 (1/2) |"
    assert len(table) == 4
    fixed = defaults.report_table(runs, "default", threshold=0.35).splitlines()
    assert fixed[0].endswith("| epochs to 0.35 (reached) |") and fixed[1].count("---") == 9
    assert fixed[3].endswith("| 2 ± 1 (2/2) |")  # 0.35 first at epochs 1 and 3


def test_the_generated_section_is_replaced_and_a_missing_one_refused() -> None:
    defaults = load()
    page = "intro\n<!-- generated: defaults-x -->\nold\n<!-- end: defaults-x -->\nafter\n"
    assert defaults.with_section(page, "defaults-x", "| new |\n") == (
        "intro\n<!-- generated: defaults-x -->\n| new |\n<!-- end: defaults-x -->\nafter\n")
    with pytest.raises(SystemExit, match="defaults-y"):
        defaults.with_section(page, "defaults-y", "| new |\n")


@pytest.mark.parametrize(("folder", "reference", "threshold"), [("defaults-lightgcn", "old-default", None),
                                                                 ("defaults-lightgcn-given", "old-default", 0.3386),
                                                                 ("defaults-freedom", "old-default", None),
                                                                 ("defaults-vbpr", "old-default", None)])
def test_the_notes_tables_are_the_rendered_result_files(folder: str, reference: str, threshold: float | None) -> None:
    defaults = load()
    page = (REPO / "docs" / "benchmarks" / "notes.md").read_text(encoding="utf-8")
    table = defaults.report_table(defaults.load_runs(REPO / "docs" / "benchmarks" / "results" / folder), reference,
                                  threshold)
    assert defaults.with_section(page, folder, table) == page  # rerun the report line of the folder's commands.sh
