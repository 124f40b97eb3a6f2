"""Progress when output is not a terminal: plain periodic log lines, never a bar."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from modalrec.cli.main import main
from modalrec.progress import LineProgress, progress

EVERY_UPDATE = "0"  # MODALREC_PROGRESS_SECONDS: a line at every update


def test_epoch_lines_carry_figures_and_elapsed_time(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="modalrec.progress")
    with progress(3, "train bpr", "epoch", interval=0, terminal=False) as bar:
        for epoch in range(3):
            bar.set_postfix({"loss": f"{0.5 - epoch / 10:.4f}"})
            bar.update(1)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("train bpr: epoch 1/3, loss 0.5000, ") and lines[0].endswith(" s elapsed")
    assert lines[-1].startswith("train bpr: epoch 3/3, loss 0.3000")
    assert len(lines) == 3  # the closing line is not repeated after the last update


def test_item_lines_carry_the_rate(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="modalrec.progress")
    with progress(10, "text features (tfidf)", "item", interval=3600, terminal=False) as bar:
        bar.update(4)
        bar.update(6)
    (line,) = [r.getMessage() for r in caplog.records]  # none within the interval, one at the end
    assert line.startswith("text features (tfidf): 10/10 items, ") and " items/s, " in line


def test_disabled_progress_is_silent(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="modalrec.progress")
    with progress(2, "x", "epoch", enabled=False, interval=0, terminal=False) as bar:
        bar.update(2)
    assert caplog.records == []


def test_a_terminal_gets_a_bar_not_lines() -> None:
    assert not isinstance(progress(2, "x", "epoch", terminal=True), LineProgress)


def test_train_logs_epochs_when_redirected(tiny_mmrec: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODALREC_PROGRESS_SECONDS", EVERY_UPDATE)
    caplog.set_level(logging.INFO, logger="modalrec.progress")
    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_mmrec), "--model", "bpr", "--out", str(out), "--set", "epochs=2",
                 "--set", "batch_size=64"]) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "modalrec.progress"]
    assert [line.split(",")[0] for line in lines] == ["train bpr: epoch 1/2", "train bpr: epoch 2/2"]
    assert all(" loss " in line and " recall@20 " in line and line.endswith(" s elapsed") for line in lines)


def test_feature_extraction_logs_items_per_second(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODALREC_PROGRESS_SECONDS", EVERY_UPDATE)
    caplog.set_level(logging.INFO, logger="modalrec.progress")
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\n" + "".join(f"i{n},red shoe number {n} for running\n" for n in range(12)))
    assert main(["features", "extract", "--items", str(items), "--column", "title", "--extractor", "tfidf",
                 "--set", "dim=4", "--out", str(tmp_path / "t.npy")]) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "modalrec.progress"]
    assert lines and lines[-1].startswith("text features (tfidf): 12/12 items, ") and "items/s" in lines[-1]


def test_libraries_info_lines_are_quiet_unless_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    from modalrec.cli.main import QUIET_LIBRARIES

    root = logging.getLogger()
    level = root.level
    loggers = [logging.getLogger(f"{library}.loader") for library in QUIET_LIBRARIES]
    try:
        root.setLevel(logging.INFO)  # what the command line sets (pytest has already configured logging)
        assert main(["models"]) == 0
        assert not any(logger.isEnabledFor(logging.INFO) for logger in loggers)
        assert all(logger.isEnabledFor(logging.WARNING) for logger in loggers)
        assert logging.getLogger("modalrec.progress").isEnabledFor(logging.INFO)
    finally:
        root.setLevel(level)
        for library in QUIET_LIBRARIES:
            logging.getLogger(library).setLevel(logging.NOTSET)
