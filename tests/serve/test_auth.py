"""Who may write to the service (issue 17: a web page on the same machine could add items with a cross-origin
form post, and no write endpoint had any authentication): the token, the Origin and Host checks, reads
protected on request, CORS off unless configured, and the page that keeps working with the token."""

from __future__ import annotations

import io
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from modalrec.cli.main import main
from modalrec.data.build import BuildOptions, ModalitySpec, build_dataset, read_raw_tables
from modalrec.errors import ConfigError
from modalrec.serve import app as app_module
from modalrec.serve.app import create_app
from modalrec.serve.auth import TOKEN_COOKIE, TOKEN_FILE, AccessPolicy, allowed_hosts, resolve_token
from modalrec.serve.items import NEW_ITEMS_FILE
from modalrec.serve.service import ServiceSettings, load_service
from tests.serve.test_app import COLOURS, FAST, error_of, picture, png_bytes, raw_shop

TOKEN = "t0ken-for-the-tests-0123456789"
HERE = "http://127.0.0.1:8000"
LOOPBACK = allowed_hosts("127.0.0.1")


@pytest.fixture(scope="module")
def shop_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("auth")
    interactions, items = raw_shop(root / "raw")
    specs = [ModalitySpec("image", ("image",), "handcrafted", {}), ModalitySpec("text", ("title",), "tfidf", {})]
    build_dataset(read_raw_tables(interactions, items), specs, root / "built", BuildOptions(progress=False))
    assert main(["train", "--data", str(root / "built"), "--model", "vbpr", "--out", str(root / "run"), *FAST]) == 0
    return root / "run"


def client_for(shop_run: Path, tmp_path: Path, **policy: Any) -> tuple[TestClient, Path]:
    """A client at http://127.0.0.1:8000 on a private copy of the run, behind ``AccessPolicy(**policy)``."""
    run = Path(shutil.copytree(shop_run, tmp_path / "run"))
    app = create_app(load_service([run], ServiceSettings()), AccessPolicy(**{"hosts": LOOPBACK, **policy}))
    return TestClient(app, base_url=HERE), run


def new_item_files() -> dict[str, tuple[str, io.BytesIO, str]]:
    return {"image": ("new.png", io.BytesIO(png_bytes(picture(COLOURS["red"], 5))), "image/png")}


FOREIGN = {"Origin": "http://evil.example", "Host": "evil.example"}
CLICK = {"user": "u0", "item": "I0", "event": "click"}


# -- a page elsewhere cannot write -------------------------------------------------------------------------

@pytest.mark.parametrize("token", [None, TOKEN])
@pytest.mark.parametrize("headers", [
    FOREIGN,  # the probe's case: a foreign page, its own Host (DNS rebinding)
    {"Origin": "http://evil.example"},  # a foreign page posting to 127.0.0.1:8000
    {"Origin": "http://127.0.0.1:9999"},  # another port on this machine is another origin
    {"Origin": "null"},  # a sandboxed frame or a file: page
    {"Sec-Fetch-Site": "cross-site"},  # a browser that says where the request comes from
], ids=["foreign-origin-and-host", "foreign-origin", "other-port", "null-origin", "sec-fetch-site"])
def test_a_cross_origin_form_post_is_refused(shop_run: Path, tmp_path: Path, headers: dict[str, str],
                                             token: str | None) -> None:
    client, run = client_for(shop_run, tmp_path, token=token)
    bearer = {"Authorization": f"Bearer {TOKEN}"} if token else {}
    form = client.post("/items", data={"item_id": "evil", "title": "planted"},
                       headers={**headers, **bearer, "Content-Type": "application/x-www-form-urlencoded"})
    assert error_of(form, 403)
    upload = client.post("/items", data={"item_id": "evil2", "title": "planted"}, files=new_item_files(),
                         headers={**headers, **bearer})
    assert error_of(upload, 403)
    feedback = client.post("/feedback", content=b'{"user": "u0", "item": "I0", "event": "click"}',
                           headers={**headers, **bearer, "Content-Type": "text/plain"})
    assert error_of(feedback, 403)
    assert not (run / NEW_ITEMS_FILE).exists()
    assert client.get("/health").json()["items"] == 12  # the catalogue as trained


def test_a_foreign_host_cannot_even_read(shop_run: Path, tmp_path: Path) -> None:
    client, _ = client_for(shop_run, tmp_path)
    assert "not this service's" in error_of(client.get("/recommend", params={"user": "u0", "k": 3},
                                                        headers={"Host": "rebound.example:8000"}), 403)
    assert client.get("/recommend", params={"user": "u0", "k": 3}, headers={"Host": "localhost:8000"}).status_code == 200


def test_same_origin_writes_need_no_token_on_loopback_without_one(shop_run: Path, tmp_path: Path) -> None:
    client, run = client_for(shop_run, tmp_path)
    assert client.post("/feedback", json=CLICK, headers={"Origin": HERE}).status_code == 201
    assert client.post("/feedback", json=CLICK).status_code == 201  # no Origin: not a browser's cross-origin call
    assert client.post("/items", data={"item_id": "mine"}, files=new_item_files(),
                       headers={"Origin": HERE}).status_code == 201


# -- the token ---------------------------------------------------------------------------------------------

def test_writes_need_the_token_and_reads_stay_open(shop_run: Path, tmp_path: Path) -> None:
    client, run = client_for(shop_run, tmp_path, token=TOKEN)
    assert "needs the service's token" in error_of(client.post("/feedback", json=CLICK), 401)
    assert client.post("/feedback", json=CLICK).headers["www-authenticate"].startswith("Bearer")
    assert "does not match" in error_of(client.post("/feedback", json=CLICK,
                                                    headers={"Authorization": "Bearer wrong-token-xxxxxxxxx"}), 403)
    assert error_of(client.post("/items", data={"item_id": "x"}, files=new_item_files()), 401)
    client.cookies.set(TOKEN_COOKIE, TOKEN)  # a cookie is never enough for a write
    assert error_of(client.post("/feedback", json=CLICK, headers={"Origin": HERE}), 401)
    client.cookies.clear()
    authorised = {"Authorization": f"Bearer {TOKEN}", "Origin": HERE}
    assert client.post("/feedback", json=CLICK, headers=authorised).json() == {"stored": 1}
    added = client.post("/items", data={"item_id": "mine", "title": "red mug"}, files=new_item_files(),
                        headers=authorised)
    assert added.status_code == 201, added.text
    assert client.get("/similar", params={"item": "mine", "k": 3}).status_code == 200  # reads: no token
    assert client.get("/recommend", params={"user": "u0", "k": 3}).status_code == 200


def test_protected_reads_and_the_page_that_carries_the_token(shop_run: Path, tmp_path: Path) -> None:
    client, _ = client_for(shop_run, tmp_path, token=TOKEN, protect_reads=True)
    assert error_of(client.get("/recommend", params={"user": "u0", "k": 3}), 401)
    assert error_of(client.get("/"), 401)
    assert client.get("/recommend", params={"user": "u0", "k": 3},
                      headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    login = client.get("/", params={"token": TOKEN}, follow_redirects=False)
    assert login.status_code == 303 and login.headers["location"] == "/"
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    page = client.get("/")  # the client keeps the cookie, as a browser does
    assert page.status_code == 200 and f'<meta name="modalrec-token" content="{TOKEN}">' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert client.get("/images/I0").status_code == 200  # pictures load with the cookie
    script = client.get("/static/app.js").text
    assert 'meta[name="modalrec-token"]' in script and "Bearer" in script


def test_the_page_carries_no_token_for_a_request_that_did_not_prove_it(shop_run: Path, tmp_path: Path) -> None:
    client, _ = client_for(shop_run, tmp_path, token=TOKEN)
    page = client.get("/")
    assert page.status_code == 200 and TOKEN not in page.text and "modalrec-token" not in page.text
    assert TOKEN not in client.get("/", params={"token": "wrong-token-xxxxxxxxxxxx"}).text


# -- CORS --------------------------------------------------------------------------------------------------

def test_cors_is_off_unless_an_origin_is_configured(shop_run: Path, tmp_path: Path) -> None:
    preflight = {"Origin": "http://dashboard.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    closed, _ = client_for(shop_run, tmp_path / "closed", token=TOKEN)
    assert "access-control-allow-origin" not in closed.options("/feedback", headers=preflight).headers
    assert "access-control-allow-origin" not in closed.get("/health", headers={"Origin": "http://x.example"}).headers
    opened, _ = client_for(shop_run, tmp_path / "open", token=TOKEN, cors_origins=("http://dashboard.example",))
    answer = opened.options("/feedback", headers=preflight)
    assert answer.headers["access-control-allow-origin"] == "http://dashboard.example"
    allowed = {"Origin": "http://dashboard.example", "Authorization": f"Bearer {TOKEN}"}
    assert opened.post("/feedback", json=CLICK, headers=allowed).status_code == 201
    assert error_of(opened.post("/feedback", json=CLICK, headers={"Origin": "http://dashboard.example"}), 401)
    assert error_of(opened.post("/feedback", json=CLICK, headers={**allowed, "Origin": "http://evil.example"}), 403)


# -- the token at start-up ---------------------------------------------------------------------------------

def test_the_token_comes_from_a_file_the_environment_or_is_made_up(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    assert resolve_token("127.0.0.1", None, run, environ={}).token is None  # loopback: same-origin writes only
    made = resolve_token("0.0.0.0", None, run, environ={})
    assert made.made_up and made.token and (run / TOKEN_FILE).read_text().strip() == made.token
    assert stat.S_IMODE((run / TOKEN_FILE).stat().st_mode) == 0o600
    assert resolve_token("192.168.1.5", None, run, environ={"MODALREC_TOKEN": TOKEN}).token == TOKEN
    given = tmp_path / "token"
    fresh = resolve_token("127.0.0.1", given, run, environ={})  # a file that does not exist yet: written there
    assert fresh.made_up and stat.S_IMODE(given.stat().st_mode) == 0o600
    again = resolve_token("127.0.0.1", given, run, environ={})
    assert again.token == fresh.token and not again.made_up
    given.write_text("short\n")
    with pytest.raises(ConfigError, match="at least 16"):
        resolve_token("127.0.0.1", given, run, environ={})
    with pytest.raises(ConfigError, match="needs a token"):
        AccessPolicy(protect_reads=True)
    assert allowed_hosts("0.0.0.0") is None and allowed_hosts("10.0.0.2", ("shop.example",)) == ("10.0.0.2",
                                                                                                 "shop.example")


def test_serve_beyond_loopback_makes_up_a_token_and_prints_it_once(shop_run: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    run = Path(shutil.copytree(shop_run, tmp_path / "run"))
    started: dict[str, Any] = {}
    monkeypatch.setattr(app_module, "serve", lambda service, host, port, **options: started.update(options))
    monkeypatch.delenv("MODALREC_TOKEN", raising=False)
    assert main(["serve", "--run", str(run), "--host", "0.0.0.0", "--port", "8123"]) == 0
    policy = started["access"]
    token = (run / TOKEN_FILE).read_text().strip()
    assert policy.token == token and policy.hosts is None
    assert capsys.readouterr().err.count(token) == 2  # once as the token, once in the page's address
    assert main(["serve", "--run", str(run)]) == 0  # loopback: no token, but only loopback Host names
    assert started["access"].token is None and "127.0.0.1" in started["access"].hosts
