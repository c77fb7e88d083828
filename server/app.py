"""The application factory: routes, middleware, error handlers, lifespan."""
from __future__ import annotations

import contextlib
import gc
import logging
import shutil
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audit.log import AuditedSession
from foundation.config import Settings, node_name
from foundation.database import create_engine, create_session_factory, read_only
from foundation.errors import AppError, Unavailable
from foundation.outage import Outage, disk_full, unreachable
from foundation.tokens import TokenSigner
from outcomes import jobs as outcome_jobs
from scheduling import room_record, sms
from scheduling.invites import participant_link
from scheduling.jobs import Jobs
from scheduling.outbox import Deliverer
from scheduling.scheduler import JobContext
from server import backups, pages
from server.api import audit as audit_api
from server.api import auth as auth_api
from server.api import disputes as disputes_api
from server.api import evidence as evidence_api
from server.api import experts as experts_api
from server.api import join as join_api
from server.api import offices as offices_api
from server.api import outcomes as outcomes_api
from server.api import rooms as rooms_api
from server.api import sessions as sessions_api
from server.api import signing as signing_api
from server.auth import CSRFMiddleware, LiveLogins, LoginSessionMiddleware
from server.headers import SecurityHeaders
from server.http import BodyDeadline, ok
from server.metrics import CountRequests, Metrics
from server.metrics import routes as metrics_routes
from server.openapi import build_openapi
from server.pages.render import render
from signaling.cluster.hub import InProcessHub
from signaling.cluster.placement import Load, Membership
from signaling.cluster.workers import WorkerHub
from web.i18n import STATIC_DIR, error_text, language, translator

logger = logging.getLogger(__name__)
VERSION = "0.1.0"
SESSION_COOKIE = "tiaojie_session"
# These paths authenticate by the signed token in the URL, never by the session cookie.
# /api/verify changes nothing: anyone may check a file they were handed.
TOKEN_AUTHENTICATED_PREFIXES = ("/api/join/", "/api/verify")


async def healthz(request: Request) -> Response:
    """Liveness, database, disk and media check: 503 "degraded" with the reason while the database
    is out of reach, the data folder's disk is full or a media worker is down and not yet
    replaced (a proxy then sends people to another node, and monitoring sees it)."""
    state = request.app.state
    try:
        async with state.db_sessions() as db:
            await read_only(db)
            await db.execute(text("SELECT 1"))
    except Exception as exc:
        if not state.outage.failed(exc, "checking health"):
            raise
        return ok({"status": "degraded", "reason": "database unreachable", "version": VERSION}, status_code=503)
    state.outage.answered()
    free = shutil.disk_usage(state.settings.data_dir).free
    if free < state.settings.disk_min_free_mb * 1048576:
        return ok({"status": "degraded", "reason": "disk full", "free_mb": round(free / 1048576, 1), "version": VERSION},
                  status_code=503)
    state.outage.has_room()
    if down := state.media.workers_down():
        return ok({"status": "degraded", "reason": "media worker down", "workers_down": down, "version": VERSION},
                  status_code=503)
    return ok({"status": "ok", "version": VERSION})


class AnswerOutages:
    """A database outage or a full disk met outside a route's handlers (the login check of
    LoginSessionMiddleware reads the database) answers 503 as one met inside does, not 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except (DBAPIError, OSError) as exc:
            if started or not (unreachable(exc) or disk_full(exc)):
                raise
            response = await _database_error(Request(scope, receive), exc)
            await response(scope, receive, send)


async def api_index(request: Request) -> Response:
    """Where the API is described, for whoever opens /api/ in a browser."""
    return ok({"name": "Tiaojie API", "version": VERSION, "openapi": "/api/openapi.json",
               "note": "JSON over HTTPS; staff log in at POST /api/auth/login and send X-CSRF-Token on changes"})


async def openapi(request: Request) -> Response:
    """The OpenAPI schema of the JSON API."""
    return ok(build_openapi(request.app.routes, VERSION))


def _wants_json(request: Request) -> bool:
    """The API and the monitoring paths answer errors in JSON; pages, as a page."""
    path = request.url.path
    return path.startswith("/api/") or path == "/metrics" or "application/json" in request.headers.get("accept", "")


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    message = error_text(exc, language(request))
    response: Response
    if _wants_json(request):
        response = ok({**exc.to_dict(), "message": message}, status_code=exc.status_code)
    else:
        response = render(request, "error.html", exc.status_code, message=message)
    response.headers.update(exc.headers)
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    t = translator(language(request))
    message = t(f"http.{exc.status_code}") if exc.status_code in (404, 405) else t("http.error")
    if _wants_json(request):
        return ok({"error": exc.detail, "message": message}, status_code=exc.status_code,
                  headers=dict(exc.headers) if exc.headers else None)
    return render(request, "error.html", exc.status_code, message=message)


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"error": "internal error; it has been logged"}, status_code=500)


async def _database_error(request: Request, exc: Exception) -> Response:
    """The database out of reach, or the disk full: 503 and one line in the log per outage
    (foundation/outage.py); any other database error is a bug (500, logged with its traceback)."""
    doing = f"serving {request.method} {request.url.path}"
    outage = request.app.state.outage
    if outage.full(exc, doing):
        return await _app_error(request, Unavailable(
            "the server's disk is full: nothing new can be saved now; tell the system administrator", retry_after_s=60))
    if not outage.failed(exc, doing):
        return await _unexpected(request, exc)
    return await _app_error(request, Unavailable("the database is out of reach; try again in a moment", retry_after_s=5))


def create_app(settings: Settings) -> Starlette:
    """Build the Tiaojie server for these settings (the schema must already be migrated)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Each part is stopped, in reverse order, however the start-up ends: a scheduler that
        # cannot start leaves no media workers or cluster membership behind.
        async with contextlib.AsyncExitStack() as stack:
            settings.data_dir.mkdir(parents=True, exist_ok=True)  # evidence, recordings; /healthz watches its disk
            engine = create_engine(settings.database_url)
            stack.push_async_callback(engine.dispose)
            sessions = create_session_factory(engine, AuditedSession)
            tokens = app.state.tokens
            outage = app.state.outage = Outage()
            metrics = app.state.metrics = Metrics()
            deliverer = Deliverer(sessions, settings, sms=sms.gateway(settings), outage=outage)
            jobs = Jobs(settings, JobContext(
                sessions=sessions, settings=settings, after_queue=deliverer.kick,
                link_for=lambda s, p: participant_link(tokens, settings.link_base(), settings.invite_grace_s, s, p),
                started_late=metrics.job_started_late,
            ), outage=outage)
            app.state.engine, app.state.db_sessions = engine, sessions
            app.state.deliverer, app.state.jobs = deliverer, jobs
            app.state.live_logins = LiveLogins(sessions)
            app.state.room_sockets = rooms_api.RoomSockets(sessions, outage)
            app.state.room_sockets.start()
            stack.push_async_callback(app.state.room_sockets.stop)
            async def record(room_id: str, event: dict[str, Any]) -> None:
                try:
                    async with sessions() as db, db.begin():
                        await room_record.write_event(db, int(room_id), event)
                except Exception as exc:  # the room goes on even if its record cannot be written
                    if not outage.failed(exc, "recording a room event"):
                        logger.exception("could not record room event %s for session %s", event.get("kind"), room_id)

            media: InProcessHub | WorkerHub
            if settings.media_workers > 0:
                media = WorkerHub(
                    settings.media_workers, record=record, reconnect_timeout_s=settings.reconnect_timeout_s,
                    recordings_dir=settings.data_dir / "recordings",
                )
            else:
                media = InProcessHub(
                    record=record, reconnect_timeout_s=settings.reconnect_timeout_s,
                    recordings_dir=settings.data_dir / "recordings",
                )
            if isinstance(media, WorkerHub):
                await media.start()
            stack.push_async_callback(media.close)
            app.state.media = media
            app.state.cluster = None
            if not settings.node_url and engine.dialect.name == "postgresql":
                logger.warning("TIAOJIE_NODE_URL is not set: if several nodes share this database, set it on every node, "
                               "or a room's people may end up on different nodes (README, 'Several nodes')")
            if settings.node_url:
                async def load() -> Load:
                    stats = await media.stats()
                    return Load(participants=stats["peers"], streams=stats["streams"], rooms=stats["room_ids"],
                                overloaded=stats["overloaded"] >= stats.get("workers", 1))

                beat_engine = create_engine(settings.database_url)  # the heartbeat's own connections
                stack.push_async_callback(beat_engine.dispose)
                app.state.cluster = Membership(sessions, node_name(settings), settings.node_url, settings.node_dead_s, load,
                                               outage=outage, evict=media.evict,
                                               beat_sessions=create_session_factory(beat_engine))
                await app.state.cluster.start()
                stack.push_async_callback(app.state.cluster.stop)
            deliverer.start()
            stack.push_async_callback(deliverer.stop)
            await jobs.start()
            stack.push_async_callback(jobs.stop)
            await outcome_jobs.install(jobs)
            backups.install(jobs)
            # Everything loaded so far (modules, the ORM's and aiortc's tables) lives as long as the
            # process: out of the collector's sight, a full collection no longer walks it, which
            # was the 100-ms pause behind the slowest 1% of requests (bench/api_load.py).
            gc.freeze()
            yield

    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        *metrics_routes,
        Route("/api", api_index),
        Route("/api/", api_index),
        Route("/api/openapi.json", openapi),
        *auth_api.routes,
        *offices_api.routes,
        *experts_api.routes,
        *disputes_api.routes,
        *sessions_api.routes,
        *join_api.routes,
        *outcomes_api.routes,
        *signing_api.routes,
        *evidence_api.routes,
        *audit_api.routes,
        *rooms_api.routes,
        *pages.routes,
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    middleware = [
        Middleware(CountRequests),
        Middleware(AnswerOutages),
        Middleware(BodyDeadline, base_s=settings.request_body_base_s, min_bps=settings.request_body_min_bps),
        Middleware(SecurityHeaders),
        Middleware(
            SessionMiddleware, secret_key=settings.secret_key, session_cookie=SESSION_COOKIE,
            max_age=settings.session_max_age_s, same_site="lax", https_only=settings.https_only_cookies,
        ),
        Middleware(LoginSessionMiddleware),
        Middleware(CSRFMiddleware, exempt_prefixes=TOKEN_AUTHENTICATED_PREFIXES),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={AppError: _app_error, HTTPException: _http_error, DBAPIError: _database_error,
                            OSError: _database_error, Exception: _unexpected},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.tokens = TokenSigner(settings.secret_key)
    return app
