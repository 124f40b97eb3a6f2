"""Who may change the service's state: a write token, and no cross-origin or foreign-host writes.

:class:`AccessMiddleware` (plain ASGI, in front of every route) applies an :class:`AccessPolicy`:

- **Host.** When the policy names its hosts (the CLI does: loopback names for a loopback bind, the bound
  address otherwise), a request whose ``Host`` header names another host is refused with 403, so a web page
  that points its own domain at 127.0.0.1 (DNS rebinding) cannot reach the service.
- **Origin.** A state-changing request (any method but GET, HEAD and OPTIONS) that a browser sends from
  another origin (an ``Origin`` header that is not this service's, or ``null``, or ``Sec-Fetch-Site:
  cross-site``/``same-site``) is refused with 403, unless that origin was allowed with ``--cors-origin``. A
  form on any other page, local or not, can therefore not add items or feedback.
- **Token.** With a token configured, a state-changing request needs ``Authorization: Bearer TOKEN`` (401
  without it, 403 with a wrong one); a cookie is never enough for a write, so no page can borrow the
  browser's. With ``protect_reads`` every other request needs the token too, as that header or as the
  ``modalrec_token`` cookie (``HttpOnly``, ``SameSite=Strict``) that opening ``/?token=TOKEN`` sets, so that the
  page's pictures load.

The page ``/`` gets the token written into it (``<meta name="modalrec-token">``, read by ``app.js`` for its
own writes) only when the request for it proved the token (the query or the cookie): a page on another origin
cannot read it (the browser's same-origin rule, and CORS is off unless configured).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import tempfile
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from html import escape as html_escape

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from modalrec.errors import ConfigError
from modalrec.serve.middleware import error_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_ENV = "MODALREC_TOKEN"
TOKEN_FILE = "serve-token"  # written into the run folder when the service makes up its own token
TOKEN_COOKIE = "modalrec_token"
MIN_TOKEN_CHARS = 16
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
FOREIGN_FETCH_SITES = frozenset({"cross-site", "same-site"})  # Sec-Fetch-Site values of another origin's request


@dataclass(frozen=True)
class AccessPolicy:
    """What :class:`AccessMiddleware` requires.

    Attributes:
        token: the secret a write (and, with ``protect_reads``, a read) must carry; None: writes need no token
            (they are still refused from other origins and hosts).
        protect_reads: reads need the token too.
        hosts: the host names a request's ``Host`` header may name (ports aside); None accepts any.
        cors_origins: origins (``scheme://host[:port]``) whose pages may call the service, writes included (with
            the token when one is set); empty: none.
    """

    token: str | None = None
    protect_reads: bool = False
    hosts: tuple[str, ...] | None = None
    cors_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.token is not None:
            _check_token(self.token, "the token")
        if self.protect_reads and self.token is None:
            raise ConfigError("--protect-reads", "needs a token (--token-file or $MODALREC_TOKEN)")

    def proves_token(self, value: str | None) -> bool:
        """``value`` is the token (compared in constant time)."""
        return self.token is not None and value is not None and hmac.compare_digest(value.encode(), self.token.encode())


class AccessMiddleware:
    """Applies an :class:`AccessPolicy` to every HTTP request before any route runs."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = refuse(self.policy, scope["method"], _headers(scope), scope.get("query_string", b""))
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message = refusal
        headers = {"WWW-Authenticate": 'Bearer realm="modalrec"'} if status == 401 else None
        await error_response(status, message, headers)(scope, receive, send)


def refuse(policy: AccessPolicy, method: str, headers: dict[str, str], query: bytes = b"") -> tuple[int, str] | None:
    """Why a request is refused, as ``(status, message)``, or None when it may go on."""
    host = headers.get("host", "")
    if policy.hosts is not None and _host_name(host) not in policy.hosts:
        return 403, f"Host '{host[:100]}' is not this service's (it answers to {', '.join(policy.hosts)})"
    origin = headers.get("origin")
    writes = method.upper() not in SAFE_METHODS
    if writes and not _same_origin(origin, host) and origin not in policy.cors_origins:
        return 403, f"cross-origin write refused (Origin '{(origin or '')[:100]}' is not this service's)"
    if writes and headers.get("sec-fetch-site") in FOREIGN_FETCH_SITES and origin not in policy.cors_origins:
        return 403, "cross-site write refused (Sec-Fetch-Site)"
    if policy.token is None or not (writes or policy.protect_reads) or method.upper() == "OPTIONS":
        return None
    bearer = _bearer(headers.get("authorization"))
    if policy.proves_token(bearer):
        return None
    if not writes and (policy.proves_token(_cookie(headers.get("cookie"), TOKEN_COOKIE))
                       or policy.proves_token(query_token(query))):
        return None
    if bearer is None:
        what = "a write" if writes else "this service"
        return 401, f"{what} needs the service's token: send 'Authorization: Bearer TOKEN'"
    return 403, "the token does not match the service's"


def query_token(query: bytes) -> str | None:
    values = urllib.parse.parse_qs(query.decode("latin-1")).get("token")
    return values[0] if values else None


def page_response(policy: AccessPolicy, page: Path, request: Request) -> Response:
    """The web page. Opened as ``/?token=TOKEN`` it sets the token cookie and sends the browser to ``/`` (the
    token leaves the address bar and history); opened with the cookie, it carries the token in a
    ``<meta name="modalrec-token">`` for its own writes. Without either, it is the plain page."""
    query = request.scope.get("query_string", b"")
    if policy.proves_token(query_token(query)):
        redirect = RedirectResponse("/", status_code=303, headers={"Cache-Control": "no-store"})
        redirect.set_cookie(TOKEN_COOKIE, str(policy.token), httponly=True, samesite="strict", path="/")
        return redirect
    html = page.read_text(encoding="utf-8")
    if policy.proves_token(request.cookies.get(TOKEN_COOKIE)):
        meta = f'<meta name="modalrec-token" content="{html_escape(str(policy.token))}">'
        html = html.replace("<head>", f"<head>\n  {meta}", 1)
    return HTMLResponse(html, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                       "Referrer-Policy": "no-referrer"})


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}


def _host_name(host: str) -> str:
    """``example.com:8000`` -> ``example.com``; ``[::1]:8000`` -> ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _same_origin(origin: str | None, host: str) -> bool:
    """No ``Origin`` (not a browser's cross-origin request) or one naming this very host and port."""
    if origin is None:
        return True
    parsed = urllib.parse.urlsplit(origin)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return False  # "null" (sandboxed frames, file: pages) and anything odd
    default = 443 if parsed.scheme == "https" else 80
    try:
        origin_port = parsed.port or default
    except ValueError:
        return False
    request = urllib.parse.urlsplit(f"//{host.strip()}")
    try:
        host_port = request.port or default
    except ValueError:
        return False
    return (request.hostname or "") == parsed.hostname and host_port == origin_port


def _bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, credentials = value.strip().partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


def _cookie(header: str | None, name: str) -> str | None:
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


# ---------------------------------------------------------------------------------------------
# The token at start-up

def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(bind: str, extra: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """The ``Host`` names a service bound to ``bind`` answers to: the loopback names for a loopback address,
    the address itself (plus ``extra``) for another one, and any for a wildcard bind (0.0.0.0, ::), where the
    token guards the writes."""
    if is_loopback(bind):
        return tuple(dict.fromkeys((*LOOPBACK_NAMES, bind.strip("[]").lower(), *extra)))
    if bind in ("0.0.0.0", "::", ""):
        return None
    return tuple(dict.fromkeys((bind.strip("[]").lower(), *extra)))


@dataclass(frozen=True)
class TokenSource:
    token: str | None
    origin: str  # where it came from, for the start-up message
    made_up: bool  # the service generated it (print it once)


def resolve_token(bind: str, token_file: Path | None, run_dir: Path, *, protect_reads: bool = False,
                  environ: dict[str, str] | None = None) -> TokenSource:
    """The write token: from ``token_file`` (made up and written there, mode 0600, when the file does not
    exist), else from ``$MODALREC_TOKEN``, else made up and written to ``RUN_DIR/serve-token`` when the service
    binds beyond loopback or protects reads; else None (loopback: writes need no token, only the same origin)."""
    environ = dict(os.environ) if environ is None else environ
    if token_file is not None:
        if token_file.is_file():
            token = token_file.read_text(encoding="utf-8", errors="replace").strip()
            _check_token(token, str(token_file))
            return TokenSource(token, str(token_file), made_up=False)
        return TokenSource(write_token_file(token_file), str(token_file), made_up=True)
    if environ.get(TOKEN_ENV):
        token = environ[TOKEN_ENV].strip()
        _check_token(token, f"${TOKEN_ENV}")
        return TokenSource(token, f"${TOKEN_ENV}", made_up=False)
    if not is_loopback(bind) or protect_reads:
        path = run_dir / TOKEN_FILE
        return TokenSource(write_token_file(path), str(path), made_up=True)
    return TokenSource(None, "", made_up=False)


def _check_token(token: str, where: str) -> None:
    if len(token) < MIN_TOKEN_CHARS or not token.isprintable() or any(c in token for c in ' "<>&;,'):
        raise ConfigError("--token-file", f"{where}: a token must be at least {MIN_TOKEN_CHARS} printable "
                                          "characters, without spaces, quotes, <, >, &, ; or commas")


def write_token_file(path: Path) -> str:
    """A new random token, written to ``path`` readable by its owner only (0600), atomically."""
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return token


__all__ = ["AccessMiddleware", "AccessPolicy", "allowed_hosts", "refuse", "resolve_token"]
