"""serve --items (titles and pictures for a run on an MMRec-layout dataset) and opt-in page feedback."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from modalrec.cli.main import main
from modalrec.errors import ModalrecError
from modalrec.serve.app import create_app
from modalrec.serve.service import ServiceSettings, load_service


@pytest.fixture(scope="module")
def run_and_items(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tests.conftest import block_dataset, write_mmrec

    root = tmp_path_factory.mktemp("serve_items")
    rows, features = block_dataset()
    data = write_mmrec(root / "mmrec", rows, features={"image": features})  # features only: no items table
    run = root / "run"
    assert main(["train", "--data", str(data), "--model", "vbpr", "--out", str(run), "--set", "epochs=2",
                 "--set", "progress=false", "--set", "batch_size=64"]) == 0
    catalogue = root / "catalogue"
    (catalogue / "pics").mkdir(parents=True)
    for item in range(12):
        Image.new("RGB", (8, 8), (20 * item, 0, 0)).save(catalogue / "pics" / f"{item}.png")
    (catalogue / "items.csv").write_text("item_id,title,image\n" +
                                         "".join(f"{i},Poster {i},pics/{i}.png\n" for i in range(12)))
    return run, catalogue / "items.csv"


def test_items_file_gives_titles_and_pictures(run_and_items: tuple[Path, Path], tmp_path: Path) -> None:
    run, items = run_and_items
    bare = TestClient(create_app(load_service([run], ServiceSettings(db=tmp_path / "a.sqlite"))))
    assert all(row["title"] is None and row["image"] is None
               for row in bare.get("/recommend", params={"user": "0", "k": 3}).json()["items"])
    client = TestClient(create_app(load_service([run], ServiceSettings(db=tmp_path / "b.sqlite", items_file=items))))
    listed = client.get("/recommend", params={"user": "0", "k": 3}).json()["items"]
    assert [row["title"] for row in listed] == [f"Poster {row['item']}" for row in listed]
    picture = client.get(listed[0]["image"])
    assert picture.status_code == 200 and picture.content == (items.parent / "pics" / f"{listed[0]['item']}.png").read_bytes()


def test_items_file_naming_other_items_is_refused(run_and_items: tuple[Path, Path], tmp_path: Path) -> None:
    run, _ = run_and_items
    other = tmp_path / "other.csv"
    other.write_text("item_id,title\nB01,Shoe\n")
    with pytest.raises(ModalrecError, match="none of the run's 12 item ids is in it"):
        load_service([run], ServiceSettings(db=tmp_path / "c.sqlite", items_file=other))


def test_page_feedback_is_opt_in(run_and_items: tuple[Path, Path], tmp_path: Path) -> None:
    run, _ = run_and_items
    default = TestClient(create_app(load_service([run], ServiceSettings(db=tmp_path / "d.sqlite"))))
    assert default.get("/health").json()["page_feedback"] is False
    opted = TestClient(create_app(load_service([run], ServiceSettings(db=tmp_path / "e.sqlite", page_feedback=True))))
    assert opted.get("/health").json()["page_feedback"] is True
    static = resources.files("modalrec.serve") / "static"
    page, script = (static / "index.html").read_text(), (static / "app.js").read_text()
    assert '<input id="log-feedback" type="checkbox">' in page  # unticked until the service says otherwise
    assert '$("log-feedback").checked = Boolean(health && health.page_feedback);' in script


def test_serve_options_parse() -> None:
    from modalrec.cli.main import build_parser

    args = build_parser().parse_args(["serve", "--run", "r", "--items", "items.csv", "--page-feedback"])
    assert args.items == "items.csv" and args.page_feedback is True
    assert build_parser().parse_args(["serve", "--run", "r"]).page_feedback is False
