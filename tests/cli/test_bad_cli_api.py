"""Malformed input through the command line (exit code 2, one ``modalrec: error:`` line, no traceback) and
through the HTTP service (a 4xx JSON error naming the field, never a 500)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from modalrec.cli.main import main
from modalrec.serve.app import create_app
from modalrec.serve.service import load_service
from tests.conftest import block_dataset, write_mmrec

FAST = ["--set", "epochs=2", "--set", "progress=false", "--set", "batch_size=16"]


def bad_csv(tmp: Path) -> Path:
    path = tmp / "interactions.csv"
    path.write_bytes("user_id,item_id\nu1,i1\ncaf\xe9,i2\n".encode("latin-1"))
    return path


def shard(tmp: Path, name: str, rows: int, mask_rows: int, npy: bytes | None = None) -> Path:
    path = tmp / f"{name}.npy"
    np.save(path, np.ones((rows, 3), dtype=np.float32))
    if npy is not None:
        path.write_bytes(npy)
    np.save(tmp / f"{name}.missing.npy", np.zeros(mask_rows, dtype=bool))
    (tmp / f"{name}.ids.txt").write_text("".join(f"{name}-{i}\n" for i in range(rows)))
    return path


def args_data_info_latin1(tmp: Path) -> list[str]:
    return ["data", "info", str(bad_csv(tmp))]


def args_data_info_latin1_config(tmp: Path) -> list[str]:
    (tmp / "c.toml").write_bytes("[data]\n# caf\xe9\n".encode("latin-1"))
    return ["data", "info", str(tmp), "--config", str(tmp / "c.toml")]


def args_train_nan_learning_rate(tmp: Path) -> list[str]:
    return ["train", "--data", str(tmp), "--model", "bpr", "--out", str(tmp / "run"), "--set", "learning_rate=nan"]


def args_train_unknown_model(tmp: Path) -> list[str]:
    return ["train", "--data", str(tmp), "--model", "nosuch", "--out", str(tmp / "run")]


def args_train_missing_data(tmp: Path) -> list[str]:
    return ["train", "--data", str(tmp / "nowhere"), "--model", "bpr", "--out", str(tmp / "run")]


def args_train_nan_features(tmp: Path) -> list[str]:
    rows, features = block_dataset()
    features[3, 1] = np.nan
    data = write_mmrec(tmp / "d", rows, features={"image": features})
    return ["train", "--data", str(data), "--model", "vbpr", "--out", str(tmp / "run"), *FAST]


def args_merge_truncated_shard(tmp: Path) -> list[str]:
    good = shard(tmp, "a", 2, 2)
    broken = shard(tmp, "b", 2, 2, npy=good.read_bytes()[:-5])
    return ["features", "merge", str(good), str(broken), "--out", str(tmp / "m.npy")]


def args_merge_mask_mismatch(tmp: Path) -> list[str]:
    return ["features", "merge", str(shard(tmp, "a", 2, 2)), str(shard(tmp, "b", 2, 5)), "--out", str(tmp / "m.npy")]


def args_extract_bad_shard(tmp: Path) -> list[str]:
    (tmp / "items.csv").write_text("item_id,title\na,red\n")
    return ["features", "extract", "--items", str(tmp / "items.csv"), "--column", "title", "--extractor", "tfidf",
            "--out", str(tmp / "x.npy"), "--shard", "5/2"]


def args_build_empty_items(tmp: Path) -> list[str]:
    (tmp / "items.csv").write_text("")
    (tmp / "interactions.csv").write_text("user_id,item_id\nu1,a\n")
    return ["data", "build", "--interactions", str(tmp / "interactions.csv"), "--items", str(tmp / "items.csv"),
            "--out", str(tmp / "out")]


def args_build_zero_batch(tmp: Path) -> list[str]:
    args = args_build_empty_items(tmp)
    (tmp / "items.csv").write_text("item_id,title\na,red\n")
    return [*args, "--text-cols", "title", "--text-extractor", "tfidf", "--batch-size", "0"]


def args_recommend_not_a_run(tmp: Path) -> list[str]:
    return ["recommend", "--run", str(tmp), "--user", "u1"]


@pytest.mark.parametrize(("make_args", "words"), [
    pytest.param(args_data_info_latin1, "interactions.csv:3: not valid UTF-8 text", id="data-info-latin1"),
    pytest.param(args_data_info_latin1_config, "c.toml:2: not UTF-8 text", id="data-info-latin1-config"),
    pytest.param(args_train_nan_learning_rate, "train.learning_rate", id="train-nan-learning-rate"),
    pytest.param(args_train_unknown_model, "unknown model 'nosuch'", id="train-unknown-model"),
    pytest.param(args_train_missing_data, "nowhere: dataset path not found", id="train-missing-data"),
    pytest.param(args_train_nan_features, "image_feat.npy: row 3, column 1", id="train-nan-features"),
    pytest.param(args_merge_truncated_shard, "b.npy: truncated", id="merge-truncated-shard"),
    pytest.param(args_merge_mask_mismatch, "b.missing.npy: expected a boolean array of shape (2,)",
                 id="merge-mask-mismatch"),
    pytest.param(args_extract_bad_shard, "--shard", id="extract-bad-shard"),
    pytest.param(args_build_empty_items, "items.csv: file is empty", id="build-empty-items"),
    pytest.param(args_build_zero_batch, "--batch-size", id="build-zero-batch"),
    pytest.param(args_recommend_not_a_run, "not a run folder", id="recommend-not-a-run"),
])
def test_bad_input_on_the_command_line_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         make_args: Callable[[Path], list[str]], words: str) -> None:
    args = make_args(tmp_path)
    capsys.readouterr()
    assert main(args) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("modalrec: error: ") and words in lines[0], lines


@pytest.mark.parametrize(("argv", "words"), [
    pytest.param(["train", "--data", "d", "--model", "bpr", "--out", "r", "--seed", "-1"],
                 "argument --seed: expected a seed in 0 .. 4294967295, got -1", id="negative-seed"),
    pytest.param(["train", "--data", "d", "--model", "bpr", "--out", "r", "--seed", "1.5"],
                 "argument --seed: expected a whole number, got '1.5'", id="fractional-seed"),
    pytest.param(["recommend", "--run", "r", "--user", "u", "-k", "ten"], "argument -k: invalid int value",
                 id="text-for-k"),
])
def test_bad_arguments_exit_2_with_usage(capsys: pytest.CaptureFixture[str], argv: list[str], words: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and words in err.strip().splitlines()[-1] and "Traceback" not in err


def test_a_real_process_exits_2_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "modalrec", "data", "info", str(bad_csv(tmp_path))],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [f"modalrec: error: {tmp_path / 'interactions.csv'}:3: not valid UTF-8 text: "
                                        "byte 0xe9 at column 4 (save the file as UTF-8)"]


# --- the HTTP service ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad_api")
    rows, features = block_dataset()
    data = write_mmrec(root / "data", rows, features={"image": features})
    assert main(["train", "--data", str(data), "--model", "bpr", "--out", str(root / "run"), *FAST]) == 0
    return root / "run"


@pytest.fixture(scope="module")
def client(trained_run: Path) -> TestClient:
    return TestClient(create_app(load_service([trained_run])), raise_server_exceptions=False)


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "field"), [
    pytest.param("GET", "/recommend", {"params": {"user": "0", "k": 2**31}}, 422, "k", id="k-beyond-2^31"),
    pytest.param("GET", "/recommend", {"params": {"user": "0", "k": "1e3"}}, 422, "k", id="k-float-text"),
    pytest.param("GET", "/recommend", {"params": {"user": "0", "k": -1}}, 422, "k", id="k-negative"),
    pytest.param("GET", "/recommend", {"params": {"user": "", "k": 3}}, 422, "user", id="empty-user"),
    pytest.param("GET", "/recommend", {"params": {"user": "u" * 300, "k": 3}}, 422, "user", id="very-long-user"),
    pytest.param("GET", "/recommend", {"params": {"user": "stranger", "k": 3, "items": "0,ü"}}, 404, "ü",
                 id="unknown-unicode-seed-item"),
    pytest.param("GET", "/similar", {"params": {"item": "../../etc/passwd", "k": 3}}, 404, "../../etc/passwd",
                 id="path-as-item-id"),
    pytest.param("GET", "/history", {"params": {"user": "0", "limit": 0}}, 422, "limit", id="zero-limit"),
    pytest.param("POST", "/feedback", {"content": b'{"user":"0","item":"0","event":"click","timestamp":NaN}',
                                       "headers": JSON}, 422, "timestamp", id="feedback-nan-timestamp"),
    pytest.param("POST", "/feedback", {"content": b'{"user":"0","item":"0","event":"click","timestamp":Infinity}',
                                       "headers": JSON}, 422, "timestamp", id="feedback-inf-timestamp"),
    pytest.param("POST", "/feedback", {"json": {"user": 0, "item": "0", "event": "click"}}, 422, "user",
                 id="feedback-number-for-id"),
    pytest.param("POST", "/feedback", {"json": {"user": "0", "item": "0", "event": "click", "extra": 1}}, 422,
                 "extra", id="feedback-unknown-field"),
    pytest.param("POST", "/feedback", {"json": "just text"}, 422, "FeedbackIn", id="feedback-string-body"),
    pytest.param("POST", "/feedback", {"content": '{"user": "0"}'.encode("utf-16"), "headers": JSON}, 422, "item",
                 id="feedback-utf16-body-missing-fields"),
    pytest.param("POST", "/feedback", {"content": b'{"user": "0", "item"', "headers": JSON}, 422, "JSON",
                 id="feedback-truncated-json"),
    pytest.param("POST", "/feedback", {"json": {"user": "0", "item": "no-such", "event": "click"}}, 404, "no-such",
                 id="feedback-unknown-item"),
])
def test_malformed_requests_get_a_4xx_naming_the_field(client: TestClient, method: str, path: str,
                                                       kwargs: dict[str, object], status: int, field: str) -> None:
    response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status and field in body["error"], body


def test_unusual_but_valid_requests_are_answered(client: TestClient) -> None:
    unicode_user = client.get("/recommend", params={"user": "ユーザー 🍵", "k": 3}).json()
    assert unicode_user["user"] == "ユーザー 🍵" and unicode_user["source"] == "popular" and len(unicode_user["items"]) == 3
    with_bom = client.post("/feedback", content=b'\xef\xbb\xbf{"user":"0","item":"1","event":"click"}', headers=JSON)
    assert with_bom.status_code == 201 and with_bom.json() == {"stored": 1}


# --- a damaged run folder --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("damaged", "command", "words"), [
    pytest.param("config.json", "recommend", "config.json: cannot be read as JSON", id="truncated-config"),
    pytest.param("best.pt", "recommend", "best.pt: cannot be read", id="truncated-weights"),
    pytest.param("metrics.json", "evaluate", "metrics.json: cannot be read as JSON", id="truncated-metrics"),
])
def test_a_damaged_run_folder_is_one_error_line(trained_run: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str], damaged: str, command: str,
                                                words: str) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    content = (run / damaged).read_bytes()
    (run / damaged).write_bytes(content[: len(content) // 2])
    args = ["recommend", "--run", str(run), "--user", "0"] if command == "recommend" else \
        ["evaluate", "--run", str(run)]
    capsys.readouterr()
    assert main(args) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("modalrec: error: ") and words in lines[0], lines
