"""Where requests may come from: configured host names only, no writes from other sites.

With no API key set (the default), anything that can reach the port may use the API; a
browser is the way in for two attacks on a service on 127.0.0.1:

- a page on another site can POST an upload or a cancel to it (a "simple" cross-origin
  request, which the browser sends without asking first). Such a request carries an
  `Origin` header naming the other site, or `Sec-Fetch-Site: cross-site`; it is refused
  with 403 unless that origin is the service's own or configured.
- DNS rebinding: a name the attacker controls is made to point at 127.0.0.1, so the
  browser treats the service as the attacker's own site and lets its page read answers.
  Every such request names the attacker's host in `Host`; only configured host names
  (`IMPORTER_ALLOWED_HOSTS`, the local names by default) are served, others get 400.

A WebSocket handshake is a GET, but no CORS rule keeps its messages from another site's
page, so a handshake sent for another site is refused like a write (it would let any page
the user opens follow the imports).

Clients that are not browsers (curl, the CLI, other services) send no `Origin` and are not
affected. Like the key check, this runs before anything reads the request body.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from settings import get_settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FOREIGN_ORIGIN = (
    "requests from another site may not change anything here; use the service's own page,"
    " or add that site to IMPORTER_ALLOWED_ORIGINS"
)
UNKNOWN_HOST = (
    "this service does not answer to the host name '{host}'; use one it is configured for"
    " (IMPORTER_ALLOWED_HOSTS)"
)


def host_name(host: str) -> str:
    """The name part of a `Host` value, lower case: `127.0.0.1:8000` -> `127.0.0.1`."""
    host = host.strip().lower()
    if host.startswith("["):  # IPv6 literal, with or without a port
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(name: str, allowed: tuple[str, ...]) -> bool:
    """`*` allows any name; `.example.com` that domain and its subdomains."""
    for entry in allowed:
        if entry == "*" or entry == name:
            return True
        if entry.startswith(".") and (name == entry[1:] or name.endswith(entry)):
            return True
    return False


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def foreign_write(scope: Scope, allowed_origins: tuple[str, ...]) -> bool:
    """An unsafe request a browser sent on behalf of another site."""
    return scope["method"] not in SAFE_METHODS and foreign_site(scope, allowed_origins)


def foreign_site(scope: Scope, allowed_origins: tuple[str, ...]) -> bool:
    """A request (or WebSocket handshake) a browser sent on behalf of another site."""
    origin = _header(scope, b"origin")
    if origin is not None and origin != "null":
        try:
            netloc = urlsplit(origin).netloc
        except ValueError:  # `http://[`: no browser sends it, and it names no site of ours
            return True
        own = netloc.lower() == (_header(scope, b"host") or "").strip().lower()
        return not (own or origin.rstrip("/").lower() in allowed_origins)
    if origin == "null":  # a sandboxed frame or a file: page; never the service's own
        return True
    return _header(scope, b"sec-fetch-site") in ("cross-site", "same-site")


class OriginCheck:
    """ASGI middleware: 400 for an unknown host name, 403 for a foreign site's write or
    WebSocket."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or refuse it before its body is read."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        settings = get_settings()
        host = host_name(_header(scope, b"host") or "")
        if not host_allowed(host, settings.allowed_host_names()):
            await _refuse(send, 400, UNKNOWN_HOST.format(host=host[:100]), scope)
            return
        foreign = foreign_write if scope["type"] == "http" else foreign_site
        if foreign(scope, settings.allowed_origin_urls()):
            await _refuse(send, 403, FOREIGN_ORIGIN, scope)
            return
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, detail: str, scope: Scope) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if _header(scope, b"content-length") not in (None, "0") or _header(scope, b"transfer-encoding"):
        # The body is never read; closing beats reading (and discarding) it to keep alive.
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
