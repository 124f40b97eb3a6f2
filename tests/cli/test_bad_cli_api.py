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


# --- issue 17: ids with gaps, tampered run folders, concurrent writers, uploads ----------------------------------


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip() and not line.startswith("INFO ")]
    assert len(lines) == 1 and lines[0].startswith("modalrec: error: ") and "Traceback" not in lines[0], lines
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def gapped_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MMRec data without u_id_mapping.csv whose user ids are 0, 3, 6, ... (gaps), plus user 500 who has only a
    test interaction; a BPR run on it."""
    root = tmp_path_factory.mktemp("gapped")
    rows, features = block_dataset()
    rows = [(3 * user, item, label) for user, item, label in rows] + [(500, 0, 2)]
    data = write_mmrec(root / "data", rows, features={"image": features})
    assert main(["train", "--data", str(data), "--model", "bpr", "--out", str(root / "run"), *FAST]) == 0
    return root / "run"


def recommended(capsys: pytest.CaptureFixture[str], *args: str) -> list[list[str]]:
    capsys.readouterr()
    assert main(["recommend", *args]) == 0
    return [line.split(",") for line in capsys.readouterr().out.splitlines()]


def test_data_info_counts_only_users_that_occur(gapped_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["data", "info", str(gapped_run.parent / "data")]) == 0
    assert "users         25\n" in capsys.readouterr().out  # 24 users with ids 0..69 and user 500, not 501


def test_recommend_gives_an_unknown_or_untrained_user_the_popular_items(gapped_run: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    rows = recommended(capsys, "--run", str(gapped_run), "--user", "50", "3", "500", "-k", "2")
    assert rows[0] == ["user_id", "rank", "item_id", "score", "source"]
    assert [(r[0], r[1], r[4]) for r in rows[1:]] == [("50", "1", "popular"), ("50", "2", "popular"),
                                                       ("3", "1", "model"), ("3", "2", "model"),
                                                       ("500", "1", "popular"), ("500", "2", "popular")]
    assert [r[2] for r in rows[1:3]] == [r[2] for r in rows[5:7]]
    everyone = recommended(capsys, "--run", str(gapped_run), "--all-users", "-k", "1")
    assert len(everyone) == 1 + 25 and everyone[-1][0] == "500" and everyone[-1][4] == "popular"


def test_the_service_gives_an_unknown_or_untrained_user_the_popular_items(gapped_run: Path) -> None:
    client = TestClient(create_app(load_service([gapped_run])))
    for user, source in (("50", "popular"), ("500", "popular"), ("3", "model")):
        answer = client.get("/recommend", params={"user": user, "k": 2}).json()
        assert answer["source"] == source, (user, answer)


def test_train_refuses_a_folder_that_holds_something_else(gapped_run: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    data = gapped_run.parent / "data"
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.tex").write_text("do not lose")
    for extra in ([], ["--overwrite"]):
        capsys.readouterr()
        assert main(["train", "--data", str(data), "--model", "bpr", "--out", str(tmp_path / "notes"), *FAST,
                     *extra]) == 2
        assert f"{tmp_path / 'notes'}: is not empty and holds no modalrec run (found thesis.tex)" in \
            one_error_line(capsys)
        assert snapshot(tmp_path / "notes") == {"thesis.tex": b"do not lose"}


def test_train_refuses_to_write_into_its_own_data_folder(gapped_run: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    data = shutil.copytree(gapped_run.parent / "data", tmp_path / "data")
    before = snapshot(data)
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--model", "bpr", "--out", str(data), *FAST, "--overwrite"]) == 2
    assert "holds no modalrec run (found image_feat.npy, tiny.inter)" in one_error_line(capsys)
    assert snapshot(data) == before


def test_two_trains_into_one_folder_never_replace_each_other(gapped_run: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The second `train` checked the folder while it was empty; the first finished before it took the lock."""
    import modalrec.train.run as run_module

    out, data = tmp_path / "run", str(gapped_run.parent / "data")
    real = run_module.prepare_data
    first: list[dict[str, bytes]] = []

    def other_process_finishes_first(*args: object, **kwargs: object) -> object:
        if not first:
            first.append({})
            assert main(["train", "--data", data, "--model", "bpr", "--out", str(out), *FAST, "--seed", "7"]) == 0
            first[0] = snapshot(out)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(run_module, "prepare_data", other_process_finishes_first)
    capsys.readouterr()
    assert main(["train", "--data", data, "--model", "bpr", "--out", str(out), *FAST]) == 2
    assert "already holds a run" in one_error_line(capsys)
    assert snapshot(out) == first[0]


def tampered(run: Path, tmp_path: Path, change: Callable[[Path], None]) -> Path:
    copy = shutil.copytree(run, tmp_path / "tampered")
    change(copy)
    return copy


def other_run(trained: Path, tmp_path: Path, *settings: str) -> Path:
    config = __import__("json").loads((trained / "config.json").read_text())
    out = tmp_path / "other"
    assert main(["train", "--data", config["data_path"], "--model", config["model_name"], "--out", str(out), *FAST,
                 *settings]) == 0
    return out


def edit_split(run: Path, **changes: Callable[[np.ndarray], np.ndarray]) -> None:
    with np.load(run / "split.npz") as saved:
        arrays = {name: saved[name] for name in saved.files}
    for name, change in changes.items():
        arrays[name] = change(arrays[name])
    np.savez_compressed(run / "split.npz", **arrays)


@pytest.mark.parametrize(("case", "command", "words"), [
    pytest.param("weights-of-another-model", "recommend", "best.pt: holds a vbpr model but config.json says bpr",
                 id="best-pt-of-another-model"),
    pytest.param("weights-of-other-settings", "recommend", "best.pt: its model settings differ from config.json "
                 "(model.embedding_dim: 8 against 64)", id="best-pt-of-other-settings"),
    pytest.param("test-part-emptied", "evaluate", "split.npz: differs from the split recorded in manifest.json",
                 id="split-test-part-emptied"),
    pytest.param("split-of-another-seed", "evaluate", "split.npz: differs from the split recorded in manifest.json",
                 id="split-copied-from-another-run"),
    pytest.param("test-part-emptied", "resume", "split.npz: differs from the split recorded in manifest.json",
                 id="resume-on-an-edited-split"),
])
def test_a_tampered_run_folder_is_refused(trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          case: str, command: str, words: str) -> None:
    def change(run: Path) -> None:
        if case == "weights-of-another-model":
            shutil.copy(other_run(trained_run, tmp_path, "--model", "vbpr") / "best.pt", run / "best.pt")
        elif case == "weights-of-other-settings":
            shutil.copy(other_run(trained_run, tmp_path, "--set", "embedding_dim=8") / "best.pt", run / "best.pt")
        elif case == "test-part-emptied":
            edit_split(run, test_users=lambda a: a[:0], test_items=lambda a: a[:0])
        else:
            shutil.copy(other_run(trained_run, tmp_path, "--set", "data.split=random", "--set", "data.split_seed=5")
                        / "split.npz", run / "split.npz")
        if command == "resume":
            (run / "metrics.json").unlink()

    run = tampered(trained_run, tmp_path, change)
    before = snapshot(run)
    args = {"recommend": ["recommend", "--run", str(run), "--user", "0"], "evaluate": ["evaluate", "--run", str(run)],
            "resume": ["train", "--resume", "--out", str(run)]}[command]
    capsys.readouterr()
    assert main(args) == 2
    assert words in one_error_line(capsys)
    assert snapshot(run) == before


def test_train_refuses_repeats_of_training_pairs_in_test(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows, _ = block_dataset()
    data = write_mmrec(tmp_path / "d", rows + [(rows[0][0], rows[0][1], 2)])  # a train pair again in test
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--model", "bpr", "--out", str(tmp_path / "run"), *FAST,
                 "--set", "data.deduplicate=false"]) == 2
    assert f"1 valid/test interactions repeat a training pair (first in test: user '{rows[0][0]}', item " \
           f"'{rows[0][1]}')" in one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_data_build_onto_a_read_only_file_system_is_one_error_line(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from modalrec.io_utils import os as io_os

    (tmp_path / "items.csv").write_text("item_id,title\na,red\n")
    (tmp_path / "interactions.csv").write_text("user_id,item_id\nu1,a\n")

    def read_only(path: object, *args: object, **kwargs: object) -> object:
        if str(path).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkdir(path, *args, **kwargs)

    real_mkdir = io_os.mkdir
    monkeypatch.setattr(io_os, "mkdir", read_only)
    capsys.readouterr()
    assert main(["data", "build", "--interactions", str(tmp_path / "interactions.csv"), "--items",
                 str(tmp_path / "items.csv"), "--text-cols", "title", "--text-extractor", "tfidf",
                 "--out", str(tmp_path / "ro" / "ds")]) == 2
    assert f"{tmp_path / 'ro' / 'ds'}: cannot write" in one_error_line(capsys)


@pytest.fixture(scope="module")
def picture_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A VBPR run on a dataset built from pictures and titles (so that POST /items takes uploads)."""
    from modalrec.data.build import BuildOptions, ModalitySpec, build_dataset, read_raw_tables
    from tests.serve.test_app import raw_shop

    root = tmp_path_factory.mktemp("pictures")
    interactions, items = raw_shop(root / "raw")
    specs = [ModalitySpec("image", ("image",), "handcrafted", {}), ModalitySpec("text", ("title",), "tfidf", {})]
    build_dataset(read_raw_tables(interactions, items), specs, root / "built", BuildOptions(progress=False))
    assert main(["train", "--data", str(root / "built"), "--model", "vbpr", "--out", str(root / "run"), *FAST]) == 0
    return root / "run"


def upload(client: TestClient, item_id: str) -> bytes:
    from tests.serve.test_app import COLOURS, picture, png_bytes

    image = png_bytes(picture(COLOURS["red"], 3))
    response = client.post("/items", data={"item_id": item_id, "title": "red cup"},
                           files={"image": ("cup.png", image, "image/png")})
    assert response.status_code == 201, response.text
    return image


def test_a_non_picture_upload_is_refused_without_a_memory_address(picture_run: Path) -> None:
    client = TestClient(create_app(load_service([picture_run])))
    response = client.post("/items", data={"item_id": "X"}, files={"image": ("a.png", b"plain text", "image/png")})
    assert response.status_code == 422 and "not a readable picture" in response.json()["error"], response.text
    assert " at 0x" not in response.text and "object" not in response.text, response.text


def test_pictures_uploaded_under_a_relative_run_path_are_served(picture_run: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(picture_run, tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    relative = TestClient(create_app(load_service([Path("run")])))
    image = upload(relative, "NEW-REL")
    assert relative.get("/images/NEW-REL").content == image
    monkeypatch.chdir("/")
    restarted = TestClient(create_app(load_service([tmp_path / "run"])))
    assert restarted.get("/images/NEW-REL").content == image


def test_a_picture_stored_with_a_relative_path_is_found_after_a_restart(picture_run: Path, tmp_path: Path) -> None:
    """new_items.parquet written by a service started with a relative --run (before this was fixed)."""
    import pandas as pd

    run = shutil.copytree(picture_run, tmp_path / "run")
    image = upload(TestClient(create_app(load_service([run]))), "NEW-OLD")
    stored = pd.read_parquet(run / "new_items.parquet")
    stored["picture"] = [str(Path("run") / "new_item_images" / Path(p).name) for p in stored["picture"]]
    stored.to_parquet(run / "new_items.parquet", index=False)
    restarted = TestClient(create_app(load_service([run])))
    assert restarted.get("/images/NEW-OLD").content == image
