"""The API's documentation: `/docs` (Swagger UI) and `/redoc`, with their own scripts.

FastAPI's pages load Swagger UI and Redoc from a CDN, unpinned, into the origin whose
sessionStorage holds the web page's API key: whoever served those scripts could read it.
Here the scripts come from the pinned `fastapi-offline` package (Swagger UI 5, Redoc 2),
the pages load nothing but this service's files, so they also work without internet
access, and a Content-Security-Policy keeps them to that.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.routes.page import RevalidatedStaticFiles

ASSETS_URL = "/docs-assets"
ASSETS_DIR = Path(__file__).resolve().parents[1] / "docs_assets"
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        # Swagger UI and Redoc style their elements from script; a style runs no code.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        # Redoc's search index runs in a worker it makes from a blob.
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
DOCS_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

router = APIRouter(include_in_schema=False)
# Our starter script first, then the package's Swagger UI, Redoc and icon.
router.mount(
    ASSETS_URL,
    RevalidatedStaticFiles(directory=ASSETS_DIR, packages=[("fastapi_offline", "static")]),
    name="docs-assets",
)


def _head(request: Request, title: str) -> tuple[str, str]:
    """(the assets' base URL, the page's <head>) for a docs page."""
    assets = escape(f"{request.scope.get('root_path', '')}{ASSETS_URL}")
    head = (
        f'<meta charset="utf-8"><title>{escape(request.app.title)} - {title}</title>'
        f'<link rel="icon" type="image/png" href="{assets}/favicon.png">'
    )
    return assets, head


def _schema_url(request: Request) -> str:
    return escape(f"{request.scope.get('root_path', '')}{request.app.openapi_url}")


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    """The OpenAPI document in Swagger UI (try requests out; "Authorize" takes a key)."""
    assets, head = _head(request, "Swagger UI")
    page = (
        f'<!doctype html><html lang="en"><head>{head}'
        f'<link rel="stylesheet" href="{assets}/swagger-ui.css"></head><body>'
        f'<div id="swagger-ui" data-openapi-url="{_schema_url(request)}"></div>'
        f'<script src="{assets}/swagger-ui-bundle.js"></script>'
        f'<script src="{assets}/swagger-init.js"></script></body></html>'
    )
    return HTMLResponse(page, headers=DOCS_HEADERS)


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    """The OpenAPI document as Redoc shows it."""
    assets, head = _head(request, "ReDoc")
    page = (
        f'<!doctype html><html lang="en"><head>{head}</head><body>'
        f'<redoc spec-url="{_schema_url(request)}"></redoc>'
        f'<script src="{assets}/redoc.standalone.js"></script></body></html>'
    )
    return HTMLResponse(page, headers=DOCS_HEADERS)
