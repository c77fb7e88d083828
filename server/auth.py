"""Who is asking: staff and expert principals from the signed session cookie (valid only while
its server-side login session lives), and CSRF."""
from __future__ import annotations

import dataclasses
import hmac
import secrets
import time
from urllib.parse import parse_qs

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accounts import service as accounts
from experts import offices
from foundation.database import read_only
from foundation.errors import Forbidden, Unauthorized
from foundation.scoping import Scope as OfficeScope

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


@dataclasses.dataclass(frozen=True)
class Staff:
    """A logged-in staff member."""

    id: int
    role: str
    office_id: int | None  # an office, or for a supervisor the level they look down from

    @property
    def is_admin(self) -> bool:
        """An office admin or a system administrator: they manage accounts (each their own)."""
        return self.role in ("admin", "sysadmin")

    @property
    def works_cases(self) -> bool:
        """A clerk or office admin, who works their office's cases (the others only look)."""
        return self.role in ("staff", "admin")


@dataclasses.dataclass(frozen=True)
class OfficeAdmin(Staff):
    """An office admin: always of an office."""

    office_id: int


async def staff_scope(db: AsyncSession, staff: Staff) -> OfficeScope:
    """The offices a staff member's requests see (foundation/scoping.py): a clerk's and an office
    admin's own office; a supervisor's level and everything under it, to look at; a system
    administrator's, every office, to look at."""
    if staff.role == "sysadmin":
        return OfficeScope(None, writable=False)
    if staff.role == "supervisor":
        return OfficeScope(await offices.below(db, staff.office_id), writable=False)
    return OfficeScope(frozenset({staff.office_id}) if staff.office_id is not None else frozenset())


def log_in_staff(conn: HTTPConnection, staff: Staff, session_id: str, who: tuple[str, str] = ("", "")) -> None:
    """Start a staff session (a fresh CSRF token too, against session fixation); `who` is the
    name and the office (or level) that the pages show."""
    conn.session.clear()
    conn.session.update({"staff": [staff.id, staff.role, staff.office_id], "sid": session_id, "who": list(who),
                         "csrf": secrets.token_urlsafe(24)})


def staff_identity(conn: HTTPConnection) -> tuple[str, str]:
    """The logged-in staff member's name and office, as the pages show them."""
    who = conn.session.get("who") or ["", ""]
    return str(who[0]), str(who[1])


def log_in_expert(conn: HTTPConnection, expert_id: int, session_id: str) -> None:
    """Start an expert session."""
    conn.session.clear()
    conn.session.update({"expert": expert_id, "sid": session_id, "csrf": secrets.token_urlsafe(24)})


def login_session_id(conn: HTTPConnection) -> str | None:
    """The server-side login session the cookie names, if any."""
    sid = conn.session.get("sid")
    return sid if isinstance(sid, str) else None


class LiveLogins:
    """Which login sessions are live, from the database, remembered for a moment: the check
    costs a query, as much as a simple read itself. Logging out, a new password and disabling
    an account forget here at once; another node sees the end within `ttl_s`."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl_s: float = 2.0) -> None:
        self._sessions = sessions
        self._ttl_s = ttl_s
        self._live_until: dict[str, float] = {}

    async def is_live(self, sid: str) -> bool:
        now = time.monotonic()
        if self._live_until.get(sid, 0.0) > now:
            return True
        async with self._sessions() as db:
            await read_only(db)
            live = await accounts.session_is_live(db, sid)
        if live:
            if len(self._live_until) > 10_000:
                self._live_until.clear()
            self._live_until[sid] = now + self._ttl_s
        else:
            self._live_until.pop(sid, None)
        return live

    def forget(self) -> None:
        """After a login ended here: check every session afresh."""
        self._live_until.clear()


class LoginSessionMiddleware:
    """Forgets the cookie's login unless its server-side session still lives (ended by logout,
    a new password or a disabled account). Runs inside the session middleware. Paths that no
    login opens (health, metrics, static files) are not checked: they answer whatever the
    database does."""

    NO_LOGIN = ("/healthz", "/metrics", "/static/")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session = scope.get("session") if scope["type"] in ("http", "websocket") else None
        if session and ("staff" in session or "expert" in session) and not scope["path"].startswith(self.NO_LOGIN):
            sid = session.get("sid")
            if not isinstance(sid, str) or not await scope["app"].state.live_logins.is_live(sid):
                session.clear()
        await self.app(scope, receive, send)


def current_staff(conn: HTTPConnection) -> Staff | None:
    """The logged-in staff member, if any."""
    raw = conn.session.get("staff")
    if not raw:
        return None
    return Staff(id=int(raw[0]), role=str(raw[1]), office_id=raw[2])


def current_expert_id(conn: HTTPConnection) -> int | None:
    """The signed-in expert's id, if any."""
    raw = conn.session.get("expert")
    return int(raw) if raw else None


def request_actor(conn: HTTPConnection) -> str:
    """Who a request acts as, for the audit log: "staff:3", "expert:7", or "anonymous"."""
    staff = current_staff(conn)
    if staff is not None:
        return f"staff:{staff.id}"
    expert_id = current_expert_id(conn)
    return f"expert:{expert_id}" if expert_id is not None else "anonymous"


def require_staff(conn: HTTPConnection) -> Staff:
    """The staff member, or Unauthorized."""
    staff = current_staff(conn)
    if staff is None:
        raise Unauthorized("log in as staff first")
    return staff


def require_admin(conn: HTTPConnection) -> Staff:
    """An office admin or a system administrator, or Forbidden."""
    staff = require_staff(conn)
    if not staff.is_admin:
        raise Forbidden("only an administrator may do this")
    return staff


def require_office_admin(conn: HTTPConnection) -> OfficeAdmin:
    """An office admin (their own office's templates, seal and settings), or Forbidden."""
    staff = require_staff(conn)
    if staff.role != "admin" or staff.office_id is None:
        raise Forbidden("only the office's administrator may do this")
    return OfficeAdmin(staff.id, staff.role, staff.office_id)


def require_pool_keeper(conn: HTTPConnection) -> Staff:
    """Someone who may add to and change the expert pool: a clerk, an office admin (for their
    office) or the system administrator (for every office); not a supervisor."""
    staff = require_staff(conn)
    if staff.role == "supervisor":
        raise Forbidden("this account may only look at the offices' cases, not change them")
    return staff


def require_sysadmin(conn: HTTPConnection) -> Staff:
    """A system administrator, or Forbidden."""
    staff = require_staff(conn)
    if staff.role != "sysadmin":
        raise Forbidden("only a system administrator may do this")
    return staff


def require_expert_self_or_staff(conn: HTTPConnection, expert_id: int, *, change: bool = False) -> Staff | None:
    """Staff (returned) or the expert themself (None); anyone else is refused. To `change` the
    pool, staff who work cases or the system administrator, who keeps the shared pool (a
    supervisor only looks)."""
    staff = current_staff(conn)
    if staff is not None:
        if change:
            require_pool_keeper(conn)
        return staff
    own = current_expert_id(conn)
    if own is None:
        raise Unauthorized("sign in first")
    if own != expert_id:
        raise Forbidden("experts may change only their own profile and availability")
    return None


def csrf_token(conn: HTTPConnection) -> str:
    """This session's CSRF token, created on first use."""
    token = conn.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        conn.session["csrf"] = token
    return str(token)


class CSRFMiddleware:
    """Refuses unsafe requests whose token (header or form field) does not match the session's.

    Runs inside the session middleware. Paths under `exempt_prefixes` authenticate by a
    token in the URL, not by the cookie, so a forged cross-site request gains nothing there.
    """

    def __init__(self, app: ASGIApp, exempt_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.exempt_prefixes = exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in UNSAFE_METHODS
            or scope["path"].startswith(self.exempt_prefixes)
        ):
            await self.app(scope, receive, send)
            return
        expected = scope.get("session", {}).get("csrf")
        headers = dict(scope["headers"])
        given = headers.get(CSRF_HEADER.encode(), b"").decode("latin-1")
        body_messages: list[Message] = []
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if not given and content_type.startswith("application/x-www-form-urlencoded"):
            body = b""
            while True:
                message = await receive()
                body_messages.append(message)
                body += message.get("body", b"")
                if not message.get("more_body", False) or len(body) > 1_000_000:
                    break
            fields = parse_qs(body.decode("utf-8", "replace"))
            given = (fields.get(CSRF_FIELD) or [""])[0]
        if not expected or not given or not hmac.compare_digest(str(expected), given):
            response = JSONResponse(
                {"error": "missing or wrong CSRF token; reload the page and try again"}, 403
            )
            await response(scope, receive, send)
            return
        if body_messages:
            replay = iter(body_messages)

            async def receive_replayed() -> Message:
                return next(replay, None) or await receive()

            await self.app(scope, receive_replayed, send)
        else:
            await self.app(scope, receive, send)
