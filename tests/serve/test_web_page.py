"""The web page in a real headless Chromium (Debian's, driven by Playwright) against a live server on loopback.

Skipped where Playwright or ``/usr/bin/chromium`` is missing; ``.ci/run`` installs both so CI runs it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import uvicorn
from PIL import Image

from modalrec.cli.main import main
from modalrec.serve.app import create_app
from modalrec.serve.service import ServiceSettings, load_service
from tests.conftest import block_dataset, write_mmrec

CHROMIUM = os.environ.get("MODALREC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"no Chromium at {CHROMIUM}"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A VBPR run on a dataset folder with an items.csv (titles and pictures), served on a free loopback port."""
    root = tmp_path_factory.mktemp("page")
    rows, features = block_dataset()
    data = write_mmrec(root / "data", rows, features={"image": features})
    (data / "images").mkdir()
    colours = [(220, 40, 40), (40, 200, 60), (40, 60, 220)]
    for item in range(12):
        Image.fromarray(np.full((48, 48, 3), colours[item // 4], dtype=np.uint8)).save(data / "images" / f"{item}.png")
    pd.DataFrame({"item_id": [str(i) for i in range(12)], "title": [f"Poster {i}" for i in range(12)],
                  "image": [f"images/{i}.png" for i in range(12)]}).to_csv(data / "items.csv", index=False)
    run = root / "run"
    assert main(["train", "--data", str(data), "--model", "vbpr", "--out", str(run), "--set", "epochs=5",
                 "--set", "progress=false", "--set", "batch_size=16"]) == 0
    db = root / "feedback.sqlite"
    app = create_app(load_service([run], ServiceSettings(db=db, page_feedback=True)))  # logging is opt-in
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uvicorn_server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert uvicorn_server.started, "the server did not start within 30 s"
    yield f"http://127.0.0.1:{port}", db
    uvicorn_server.should_exit = True
    thread.join(timeout=10)
    listener.close()


@contextlib.contextmanager
def browser_page(home: Path) -> Iterator[Any]:
    """A fresh headless Chromium page (20 s timeouts), closed afterwards."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS,
                                             env={**os.environ, "HOME": str(home)})
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            yield page
        finally:
            browser.close()


def test_pick_a_user_see_pictures_and_arm_then_click_for_similar_items(server: tuple[str, Path],
                                                                        tmp_path: Path) -> None:
    url, db = server
    with browser_page(tmp_path) as page:
        page.goto(url + "/")
        page.fill("#user-input", "0")
        page.fill("#k-input", "6")
        page.click("#show-button")
        page.wait_for_selector("#recommendations .card")
        cards = page.locator("#recommendations .card")
        assert cards.count() == 6
        assert page.text_content("#arm") == "A" and page.text_content("#source") == "model"
        page.wait_for_function("Array.from(document.querySelectorAll('#recommendations img'))"
                               ".every(img => img.complete && img.naturalWidth === 48)")
        first_item = cards.first.get_attribute("data-item")
        assert cards.first.locator(".title").text_content() == f"Poster {first_item}"
        page.wait_for_selector("#history .card")
        assert page.locator("#history .card").count() == 2  # the user's training items

        cards.first.click()
        page.wait_for_selector("#similar .card")
        assert page.text_content("#similar-to") == f"Poster {first_item}"
        similar = page.locator("#similar .card")
        assert similar.count() == 11
        assert first_item not in [similar.nth(i).get_attribute("data-item") for i in range(similar.count())]
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the page posts feedback without waiting for the answer
        with sqlite3.connect(db) as connection:
            counts = dict(connection.execute("SELECT event, COUNT(*) FROM feedback GROUP BY event").fetchall())
        if counts.get("click"):
            break
        time.sleep(0.1)
    assert counts == {"impression": 6, "click": 1}


def test_the_api_docs_render_without_network(server: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = server
    outside: list[str] = []
    with browser_page(tmp_path) as page:
        page.on("request", lambda request: None if request.url.startswith(url) else outside.append(request.url))
        page.goto(url + "/docs")
        page.wait_for_selector("#docs .op")
        shown = page.locator("#docs .op .path")
        paths = {shown.nth(i).text_content() for i in range(shown.count())}
    assert {"/recommend", "/similar", "/items", "/feedback", "/health", "/metrics", "/ab/report"} <= paths
    assert outside == []
