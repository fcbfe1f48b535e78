"""Optional API keys: with `IMPORTER_API_KEYS` set, `/api/*` (but health) and `/metrics`
need a Bearer key.

A WebSocket may carry the key as the subprotocol `bearer.KEY` instead, because a browser
cannot set headers on one. Never in the URL: query strings end up in access logs.

The check is ASGI middleware, not a route dependency, so it runs before anything reads the
request body: a client without a key cannot make the service spool an upload to disk. The
page shell, its static files and the API docs stay open, so a browser can load the page and
ask for a key; none of them holds data.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from fastapi.security import HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from settings import ApiKey, get_settings

PROTECTED_PREFIX = "/api/"
OPEN_PATHS = frozenset({"/api/health"})
# Outside `/api/` because that is where Prometheus looks by default; it tells how busy the
# service is and why imports fail, so it is kept like the API.
KEYED_PATHS = frozenset({"/metrics"})
MISSING_KEY = "this service needs an API key; send it as the header 'Authorization: Bearer KEY'"
MISSING_SOCKET_KEY = (
    "this service needs an API key; send it as the header 'Authorization: Bearer KEY' or, from"
    " a browser, as the WebSocket subprotocol 'bearer.KEY'"
)
WRONG_KEY = "the API key is not valid; check it, or ask the service's operator for one"
# Where a request's scope keeps the label of the key it was let in with.
KEY_LABEL = "api_key_label"

# Documents the scheme in OpenAPI (and gives /docs its "Authorize" button); the middleware
# below is what enforces it.
bearer_scheme = HTTPBearer(
    auto_error=False,
    description="An API key from `IMPORTER_API_KEYS`, needed when that setting is set.",
)


def matching_label(given: str, accepted: tuple[ApiKey, ...]) -> str | None:
    """The label of the key `given` is, or None; compared in time independent of content."""
    # Hashing first makes every comparison one of equal lengths; every key is compared, so
    # the time does not tell which key came closest either.
    digest = hashlib.sha256(given.encode()).digest()
    found: str | None = None
    for key in accepted:
        if hmac.compare_digest(digest, hashlib.sha256(key.key.encode()).digest()):
            found = key.label
    return found


def key_label(scope: Scope) -> str | None:
    """The label of the key this request was let in with; None when keys are not set."""
    label = scope.get("state", {}).get(KEY_LABEL)
    return label if isinstance(label, str) else None


def bearer_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token of an `Authorization: Bearer ...` header, or None when there is none."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


def protocol_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key a WebSocket client offered as the subprotocol `bearer.KEY`, or None."""
    for name, value in headers:
        if name != b"sec-websocket-protocol":
            continue
        for offered in value.decode("latin-1").split(","):
            scheme, dot, token = offered.strip().partition(".")
            if scheme.lower() == "bearer" and dot and token:
                return token
    return None


def needs_key(scope: Scope) -> bool:
    """Whether this request's path is one the keys protect."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    if path.rstrip("/") in KEYED_PATHS:
        return True
    return path.startswith(PROTECTED_PREFIX) and path.rstrip("/") not in OPEN_PATHS


class ApiKeyAuth:
    """ASGI middleware answering 401 to a protected request without an accepted key."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or refuse it before its body is read (or its socket opened)."""
        accepted = get_settings().accepted_api_keys()
        kind = scope["type"]
        if kind not in ("http", "websocket") or not accepted or not needs_key(scope):
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        token = bearer_token(headers)
        if token is None and kind == "websocket":
            token = protocol_token(headers)
        label = matching_label(token, accepted) if token is not None else None
        if label is not None:
            # For the routes: who asked (a job's `requested_by`), whose streams count.
            scope.setdefault("state", {})[KEY_LABEL] = label
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            await _refuse_socket(scope, send, wrong=token is not None)
            return
        await _refuse(send, wrong=token is not None, unread_body=_has_body(scope))


def _has_body(scope: Scope) -> bool:
    return any(
        name in (b"content-length", b"transfer-encoding") and value not in (b"0", b"")
        for name, value in scope.get("headers", [])
    )


def _refusal(detail: str, *, wrong: bool) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"detail": detail}).encode()
    challenge = b'Bearer error="invalid_token"' if wrong else b"Bearer"
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", challenge),
        (b"cache-control", b"no-store"),
    ]
    return headers, body


async def _refuse_socket(scope: Scope, send: Send, *, wrong: bool) -> None:
    """Answer the handshake 401 like a request, where the server can (all uvicorn's can);
    else close it (1008), which the client sees as 403."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    headers, body = _refusal(WRONG_KEY if wrong else MISSING_SOCKET_KEY, wrong=wrong)
    start = {"type": "websocket.http.response.start", "status": 401, "headers": headers}
    await send(start)
    await send({"type": "websocket.http.response.body", "body": body})


async def _refuse(send: Send, *, wrong: bool, unread_body: bool) -> None:
    headers, body = _refusal(WRONG_KEY if wrong else MISSING_KEY, wrong=wrong)
    if unread_body:
        # The body is never read; closing beats reading (and discarding) it to keep alive.
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})
