"""The FastAPI application: routers, the body size limit and one-sentence error answers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Security, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import ApiKeyAuth, bearer_scheme
from api.deps import get_trigger
from api.limits import BodySizeLimit
from api.metrics import RequestMetrics, RequestTimer
from api.origin import OriginCheck
from api.routes import docs, errors, events, exports, health, imports, metrics, page, review
from api.schemas import ErrorOut
from db.migrate import upgrade_database
from itemsheet.jobs.views import InvalidCursor, JobConflict, JobNotFound
from itemsheet.sheet.messages import QUOTED_CHARS, clip
from orchestration.dispatch import Dispatcher
from orchestration.trigger import PrefectTrigger
from settings import SettingsError, get_settings

log = logging.getLogger("importer.api")
API_PREFIX = "/api"
UNEXPECTED = "the server hit an unexpected error; try again, and report it if it persists"
UNREADABLE_JSON = 'the request body is not valid JSON; send an object like {"mapping": {...}}'
UNREADABLE_BODY = (
    "the request body could not be read as a multipart form; send the file as the form field"
    " 'file' of a multipart/form-data body"
)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # An embedded SQLite database is ours to upgrade; PostgreSQL is upgraded on purpose.
    if get_settings().resolved_database_url().startswith("sqlite"):
        await run_in_threadpool(upgrade_database)
    # Jobs left waiting for a run (Prefect was away, the API restarted) are started from here.
    dispatcher = Dispatcher(lambda: app.dependency_overrides.get(get_trigger, get_trigger)())
    app.state.dispatcher = dispatcher
    dispatcher.start()
    dispatcher.kick()
    yield
    await dispatcher.stop()
    trigger = get_trigger()
    if isinstance(trigger, PrefectTrigger):
        await trigger.aclose()


def create_app() -> FastAPI:
    """A new application; tests create one each and override its trigger."""
    app = FastAPI(
        title="Item importer",
        summary="Import item catalogues from spreadsheets as Prefect flow runs.",
        version="0.1.0",
        lifespan=_lifespan,
        # Served by `api.routes.docs` from pinned files instead of a CDN.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    # Innermost: an unexpected error is answered here, so the connection stays usable.
    app.add_middleware(UnexpectedErrors)
    app.add_middleware(BodySizeLimit)
    # Inside the key check: only requests the service accepts are timed.
    app.state.request_metrics = RequestMetrics()
    app.add_middleware(RequestTimer, metrics=app.state.request_metrics)
    # Before the timer and the body limit: a request without a key is refused unread.
    app.add_middleware(ApiKeyAuth)
    # Outermost: a request for another host name, or a foreign site's write, goes no further.
    app.add_middleware(OriginCheck)
    # The schema declares the key only where the service asks for one.
    keyed: dict[str, Any] = {}
    if get_settings().accepted_api_keys():
        keyed = {
            "dependencies": [Security(bearer_scheme)],
            "responses": {401: {"model": ErrorOut, "description": "No valid API key."}},
        }
    for module in (imports, review, errors, events, exports):
        app.include_router(module.router, prefix=API_PREFIX, **keyed)
    app.include_router(metrics.router, **keyed)
    app.include_router(events.websocket_router, prefix=API_PREFIX)
    app.include_router(health.router, prefix=API_PREFIX)
    app.include_router(page.router)
    app.include_router(docs.router)
    app.add_exception_handler(JobNotFound, _answer(status.HTTP_404_NOT_FOUND))
    app.add_exception_handler(JobConflict, _answer(status.HTTP_409_CONFLICT))
    app.add_exception_handler(InvalidCursor, _answer(status.HTTP_422_UNPROCESSABLE_CONTENT))
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    return app


def _answer(code: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """A handler that answers `code` with the exception's one-sentence message."""

    async def handler(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, code)

    return handler


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's list of validation errors, said as one sentence."""
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    own = (first.get("ctx") or {}).get("error")
    if first.get("type") == "value_error" and isinstance(own, ValueError):
        # A sentence of our own validators: it says what is wrong already.
        return JSONResponse({"detail": str(own)}, status.HTTP_422_UNPROCESSABLE_CONTENT)
    # A location can hold a key of the body (a mapping's header): quoted short.
    where = ".".join(
        clip(str(part), QUOTED_CHARS)
        for part in first.get("loc", ())
        if part not in ("body", "query", "path")
    )
    message = str(first.get("msg", "the request is not valid"))
    message = message[:1].lower() + message[1:]
    detail = f"{where or 'the request'} is not valid: {message}"
    return JSONResponse({"detail": detail}, status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's answer, except that a body it could not parse (400) is said as a sentence."""
    assert isinstance(exc, StarletteHTTPException)
    # The only 400s come from reading a malformed body: a form, or a review's JSON answer.
    if exc.status_code == status.HTTP_400_BAD_REQUEST:
        json_body = request.headers.get("content-type", "").startswith("application/json")
        detail = UNREADABLE_JSON if json_body else UNREADABLE_BODY
        return JSONResponse({"detail": detail}, status.HTTP_400_BAD_REQUEST)
    return await http_exception_handler(request, exc)


class UnexpectedErrors:
    """ASGI middleware: an error no handler knows is logged with its traceback and answered
    500 with one sentence, and goes no further.

    Starlette's own last-resort handler answers too, but then re-raises the error to the
    server, which drops the connection: the client's next request on that keep-alive
    connection was reset. Here the error ends with the answer. An error after a streamed
    answer began has nothing left to answer; that one still reaches the server.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; answer 500 for an error raised before the answer began."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            if started:
                raise
            log.exception("unexpected error answering %s %s", scope["method"], scope["path"])
            answer = JSONResponse({"detail": UNEXPECTED}, status.HTTP_500_INTERNAL_SERVER_ERROR)
            await answer(scope, receive, send)


def _app_or_exit() -> FastAPI:
    """The app a server imports; settings that are not valid stop the server with their
    sentence instead of an import traceback."""
    try:
        return create_app()
    except SettingsError as exc:
        raise SystemExit(f"error: {exc}") from None


app = _app_or_exit()
