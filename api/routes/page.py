"""The web page: `GET /` answers index.html; its CSS, scripts and icon are under `/static/`."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from api.deps import SettingsDep
from itemsheet.sheet.sizes import human_size

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
# The page builds every element from text, never from markup, and loads nothing but its own
# files; the policy makes a slip in that rule inert instead of exploitable.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # A new deployment's page must not be served from a stale cache with old scripts.
    "Cache-Control": "no-cache",
}


class RevalidatedStaticFiles(StaticFiles):
    """Static files a browser revalidates (ETag) on each load, so an upgrade is seen at once."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        """Starlette's answer, plus `Cache-Control: no-cache` and `nosniff`."""
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


router = APIRouter(tags=["page"])
router.mount("/static", RevalidatedStaticFiles(directory=STATIC_DIR), name="static")


@router.get("/", include_in_schema=False)
def index(settings: SettingsDep) -> HTMLResponse:
    """The single page that uploads files, follows jobs and lists the history."""
    return HTMLResponse(render_index(settings.max_upload_bytes), headers=PAGE_HEADERS)


def render_index(max_upload_bytes: int) -> str:
    """index.html with the upload limit filled in (our own setting, never request data)."""
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    return page.replace("{{max_upload_bytes}}", str(max_upload_bytes)).replace(
        "{{max_upload}}", human_size(max_upload_bytes)
    )
