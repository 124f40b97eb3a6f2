"""The service's security: it binds to this machine by default, reads and writes only inside the run and
content folders (traversal, absolute paths, symlinks, encoded dots), caps uploads while they stream in, and
accepts only real pictures of the formats it can read."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient
from PIL import Image

from modalrec.cli.main import main
from modalrec.data.build import BuildOptions, ModalitySpec, build_dataset, read_raw_tables
from modalrec.serve.app import DEFAULT_HOST, MAX_SEED_CHARS, create_app, serve
from modalrec.serve.service import ServiceSettings, load_service
from modalrec.serve.items import MAX_UPLOAD_PIXELS, NEW_IMAGES_DIR, NEW_ITEMS_FILE, Catalogue, read_content_source
from modalrec.serve.schemas import MAX_ID_CHARS
from tests.serve.test_app import COLOURS, FAST, error_of, picture, png_bytes, raw_shop

SECRET = b"the secret outside every allowed folder"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A built shop and a vbpr run; outside the content folder lie a secret file and a secret picture, and the
    content folder holds symlinks to both (links.png, secret-link.txt) and one to a picture inside (I0-link.png)."""
    root = tmp_path_factory.mktemp("secure")
    interactions, items = raw_shop(root / "raw")
    specs = [ModalitySpec("image", ("image",), "handcrafted", {}), ModalitySpec("text", ("title",), "tfidf", {})]
    build_dataset(read_raw_tables(interactions, items), specs, root / "built", BuildOptions(progress=False))
    assert main(["train", "--data", str(root / "built"), "--model", "vbpr", "--out", str(root / "run"), *FAST]) == 0
    (root / "secret.txt").write_bytes(SECRET)
    images = root / "raw" / "images"
    os.symlink(root / "secret.png", images / "link.png")  # raw_shop wrote secret.png next to raw/
    os.symlink(root / "secret.txt", images / "secret-link.txt")
    os.symlink("I0.png", images / "I0-link.png")  # relative: it stays inside in a copy too
    return {"root": root, "raw": root / "raw", "run": root / "run"}


def fresh_client(shop: dict[str, Path], tmp_path: Path, **settings: Any) -> tuple[TestClient, Path]:
    """A client on a private copy of the run (new items stay in it), with the given service settings."""
    run = Path(shutil.copytree(shop["run"], tmp_path / "run"))
    return TestClient(create_app(load_service([run], ServiceSettings(**settings)))), run


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


# ---------------------------------------------------------------------------------------------
# Binding

def test_the_service_binds_to_this_machine_unless_told_otherwise(shop: dict[str, Path],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    assert main(["serve", "--run", str(shop["run"])]) == 0
    assert main(["serve", "--run", str(shop["run"]), "--host", "0.0.0.0", "--port", "9001"]) == 0
    assert [(c["host"], c["port"]) for c in calls] == [("127.0.0.1", 8000), ("0.0.0.0", 9001)]
    # the longest query the spec allows, percent-encoded at 12 bytes a character, reaches the app
    assert calls[0]["h11_max_incomplete_event_size"] > 12 * (MAX_SEED_CHARS + MAX_ID_CHARS) + 1000
    assert DEFAULT_HOST == "127.0.0.1" and serve.__defaults__ == (DEFAULT_HOST, 8000)


# ---------------------------------------------------------------------------------------------
# Reading only inside the content folder

TRAVERSALS = ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e/%2e%2e/etc/passwd", "%2E%2E%2F%2E%2E%2Fsecret.txt",
              "/etc/passwd", "%2Fetc%2Fpasswd", "..\\..\\secret.txt", "I0/../../../secret.png",
              "....//....//secret.txt", "%252e%252e%252fsecret.txt", "I0%00.png", "link", "secret-link"]


@pytest.mark.parametrize("attempt", TRAVERSALS)
def test_pictures_cannot_be_read_from_outside_the_content_folder(shop: dict[str, Path], attempt: str) -> None:
    client = TestClient(create_app(load_service([shop["run"]])))
    for url in (f"/images/{attempt}", f"/static/{attempt}", f"/static/../{attempt}"):
        response = client.get(url)
        assert response.status_code == 404, (url, response.status_code)
        assert SECRET not in response.content and b"root:" not in response.content


def test_a_dataset_picture_that_is_a_symlink_out_of_the_folder_is_never_served(shop: dict[str, Path],
                                                                               tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(shop["raw"], raw, symlinks=True)
    table = (raw / "items.csv").read_text()
    (raw / "items.csv").write_text(table.replace("images/I1.png", "images/link.png")
                                   .replace("images/I2.png", "images/secret-link.txt")
                                   .replace("images/I3.png", "images/I0-link.png"))
    catalogue = Catalogue(np.asarray([f"I{i}" for i in range(12)]), read_content_source(raw), uploads=tmp_path / "up")
    assert catalogue.picture_file(1) is None  # a link to the secret picture, outside
    assert catalogue.picture_file(2) is None  # a link to the secret text, outside
    assert catalogue.picture_file(3) == (raw / "images" / "I0.png").resolve()  # a link that stays inside
    assert catalogue.picture_file(11) is None  # a plain ../ path


@pytest.mark.parametrize(("image_path", "status"), [
    ("../../etc/passwd", 403), ("/etc/passwd", 403), ("../secret.png", 403), ("images/../../secret.png", 403),
    ("images/link.png", 403), ("images/secret-link.txt", 403), ("%2e%2e/secret.png", 400),
    ("images/I0.png\x00.txt", 400), ("a" * 5000, 422), ("x/" * 2000 + "y", 400), ("images", 400),
])
def test_new_items_cannot_read_content_outside_the_allowed_folders(shop: dict[str, Path], tmp_path: Path,
                                                                   image_path: str, status: int) -> None:
    client, run = fresh_client(shop, tmp_path)
    before = files_under(shop["root"])
    response = client.post("/items", data={"item_id": "X", "image_path": image_path})
    assert error_of(response, status)
    assert SECRET.decode() not in response.text
    assert not (run / NEW_ITEMS_FILE).exists()
    assert files_under(shop["root"]) == before


def test_a_symlink_inside_the_folder_to_a_picture_inside_is_allowed(shop: dict[str, Path], tmp_path: Path) -> None:
    client, _ = fresh_client(shop, tmp_path)
    response = client.post("/items", data={"item_id": "linked", "image_path": "images/I0-link.png"})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("item_id", ["../../etc/passwd", "/tmp/evil.png", "a/../../b", "%2e%2e%2fx", "C:\\x", "x?y#z"])
def test_new_items_with_path_like_ids_are_stored_inside_the_run_folder(shop: dict[str, Path], tmp_path: Path,
                                                                       item_id: str) -> None:
    client, run = fresh_client(shop, tmp_path)
    outside = files_under(tmp_path) - files_under(run)
    image = png_bytes(picture(COLOURS["blue"], 3))
    response = client.post("/items", data={"item_id": item_id, "title": "blue mug"},
                           files={"image": ("../../../evil.png", image, "image/png")})
    assert response.status_code == 201, response.text
    stored = list((run / NEW_IMAGES_DIR).iterdir())
    assert len(stored) == 1 and stored[0].read_bytes() == image
    assert stored[0].resolve().parent == (run / NEW_IMAGES_DIR).resolve()
    assert files_under(tmp_path) - files_under(run) == outside  # nothing new outside the run folder
    url = response.json()["image"]
    assert url == "/images/" + urllib.parse.quote(item_id, safe="")
    status, body = call_asgi(client.app, "GET", url)  # TestClient would decode the path twice
    assert (status, body) == (200, image)
    recommended = client.get("/similar", params={"item": item_id, "k": 2})
    assert recommended.status_code == 200


# ---------------------------------------------------------------------------------------------
# Upload size, checked while the body streams in

def test_the_upload_cap_is_configurable_and_refuses_bigger_pictures(shop: dict[str, Path], tmp_path: Path) -> None:
    noisy = Image.effect_noise((150, 150), 100).convert("RGB")
    big = png_bytes(noisy)  # incompressible noise: about 68 KB
    small = png_bytes(picture(COLOURS["red"], 1))
    assert len(small) < 20_000 < 50_000 < len(big)
    client, _ = fresh_client(shop, tmp_path, max_upload_bytes=50_000)
    assert "at most 50000" in error_of(client.post("/items", data={"item_id": "big"},
                                                   files={"image": ("a.png", big, "image/png")}), 413)
    assert client.post("/items", data={"item_id": "small"},
                       files={"image": ("a.png", small, "image/png")}).status_code == 201
    with pytest.raises(Exception, match="max_upload_bytes"):
        ServiceSettings(max_upload_bytes=0)


def call_asgi(app: Any, method: str, url: str, headers: list[tuple[bytes, bytes]] = [],
              chunks: Iterator[bytes] = iter([])) -> tuple[int, bytes]:
    """Send ``chunks`` to ``app`` as a streamed body, the path decoded once as a server does; the answer's status
    and body."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": urllib.parse.unquote(url), "raw_path": url.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), *headers], "client": ("127.0.0.1", 1), "server": ("x", 80)}
    sent: list[dict] = []
    more = True

    async def request() -> None:
        answered = asyncio.Event()

        async def receive() -> dict:
            nonlocal more
            if more:
                chunk = next(chunks, None)
                more = chunk is not None
                return {"type": "http.request", "body": chunk or b"", "more_body": more}
            await answered.wait()  # as a server does: the client disconnects once it has the answer
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                answered.set()

        await asyncio.wait_for(app(scope, receive, send), timeout=60)

    asyncio.run(request())
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def endless_upload(pulled: list[int]) -> Iterator[bytes]:
    """A multipart body with a 16 MiB picture, in 64 KiB chunks; ``pulled`` counts the chunks read."""
    yield (b"--XX\r\nContent-Disposition: form-data; name=\"item_id\"\r\n\r\nbig\r\n--XX\r\n"
           b"Content-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n")
    for _ in range(256):
        pulled.append(1)
        yield b"\x89PNG" * (16 << 10)
    yield b"\r\n--XX--\r\n"


def test_an_upload_without_a_length_is_cut_off_once_it_passes_the_cap(shop: dict[str, Path], tmp_path: Path) -> None:
    client, _ = fresh_client(shop, tmp_path, max_upload_bytes=1 << 20)
    pulled: list[int] = []
    status, body = call_asgi(client.app, "POST", "/items", [(b"content-type", b"multipart/form-data; boundary=XX")],
                             endless_upload(pulled))
    assert status == 413 and "too large" in json.loads(body)["error"]
    # the cap is 1 MiB plus 1 MiB of form overhead: 32 chunks of 64 KiB pass it, and none is read after
    assert len(pulled) == 32


def test_a_declared_length_over_the_cap_is_refused_before_reading(shop: dict[str, Path], tmp_path: Path) -> None:
    client, _ = fresh_client(shop, tmp_path, max_upload_bytes=1 << 20)
    pulled: list[int] = []
    status, body = call_asgi(client.app, "POST", "/items", [(b"content-type", b"multipart/form-data; boundary=XX"),
                                                            (b"content-length", str(100 << 20).encode())],
                             endless_upload(pulled))
    assert status == 413 and f"{100 << 20} bytes" in json.loads(body)["error"] and pulled == []
    status, body = call_asgi(client.app, "POST", "/feedback", [(b"content-type", b"application/json")],
                             iter([b'[{"user": "' + b"x" * (1 << 20), b'"}]']))
    assert status == 413 and "too large" in json.loads(body)["error"]


# ---------------------------------------------------------------------------------------------
# Upload type: the declared type and the real bytes

def encoded(image: Image.Image, kind: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=kind, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(("name", "content", "declared", "status", "words"), [
    ("a.png", png_bytes(picture((1, 2, 3), 0)), "text/plain", 415, "image/*"),
    ("a.png", png_bytes(picture((1, 2, 3), 0)), "", 415, "image/*"),
    ("a.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml", 422, "not a readable picture"),
    ("a.png", b"GIF89a" + b"\x00" * 40, "image/png", 422, "not a readable picture"),
    ("a.png", b"#!/bin/sh\nrm -rf /\n", "image/png", 422, "not a readable picture"),
    ("a.tif", encoded(picture((1, 2, 3), 0), "TIFF"), "image/tiff", 415, "TIFF"),
    ("a.ico", encoded(picture((1, 2, 3), 0), "ICO"), "image/x-icon", 415, "ICO"),
    ("a.png", png_bytes(Image.new("1", (10_000, 5_000))), "image/png", 413, "pixels"),
])
def test_only_real_pictures_of_readable_formats_are_accepted(shop: dict[str, Path], tmp_path: Path, name: str,
                                                             content: bytes, declared: str, status: int,
                                                             words: str) -> None:
    client, run = fresh_client(shop, tmp_path)
    response = client.post("/items", data={"item_id": "X"}, files={"image": (name, content, declared)})
    assert words in error_of(response, status)
    assert not (run / NEW_ITEMS_FILE).exists() and not any((run / NEW_IMAGES_DIR).glob("*"))
    assert 10_000 * 5_000 > MAX_UPLOAD_PIXELS


ODD_PICTURES = {
    "1x1 png": encoded(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"),
    "16-bit grey png": encoded(Image.new("I;16", (20, 20), 300), "PNG"),
    "grey with alpha png": encoded(Image.new("LA", (20, 20)), "PNG"),
    "palette gif": encoded(picture((200, 10, 10), 0).convert("P"), "GIF"),
    "animated gif": encoded(picture((0, 0, 200), 0), "GIF", save_all=True,
                            append_images=[picture((0, 200, 0), 1)]),
    "cmyk jpeg": encoded(picture((10, 200, 10), 0).convert("CMYK"), "JPEG"),
    "1-bit bmp": encoded(Image.new("1", (30, 30), 1), "BMP"),
    "wide webp": encoded(Image.new("RGB", (3000, 1), (1, 2, 3)), "WEBP"),
}


@pytest.mark.parametrize("kind", list(ODD_PICTURES))
def test_odd_but_valid_pictures_become_items(shop: dict[str, Path], tmp_path: Path, kind: str) -> None:
    client, _ = fresh_client(shop, tmp_path)
    response = client.post("/items", data={"item_id": "odd"}, files={"image": ("x", ODD_PICTURES[kind], "image/x")})
    assert response.status_code == 201, response.text
    assert response.json()["modalities"]["image"] == "content"


def test_items_need_a_form_and_ids_without_control_characters(shop: dict[str, Path], tmp_path: Path) -> None:
    client, _ = fresh_client(shop, tmp_path)
    assert "expected a form" in error_of(client.post("/items", json={"item_id": "X", "title": "t"}), 415)
    for bad in ("a\x00b", "line\nbreak", "x" * 201, "   ", ".", " .. "):
        assert "item_id" in error_of(client.post("/items", data={"item_id": bad, "title": "t"}), 422)
    assert "at most 10000" in error_of(client.post("/items", data={"item_id": "Y", "title": "t" * 10_001}), 422)


def test_fuzzed_paths_do_not_grow_the_metrics(shop: dict[str, Path]) -> None:
    client = TestClient(create_app(load_service([shop["run"]])))
    for n in range(50):
        client.get(f"/nothing-{n}/x")
    client.get("/recommend", params={"user": "U0", "k": 2})
    endpoints = client.get("/metrics").json()["endpoints"]
    assert endpoints["(other)"]["requests"] == 50 and endpoints["(other)"]["4xx"] == 50
    assert set(endpoints) == {"(other)", "/recommend"}
