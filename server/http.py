"""Helpers that keep route handlers thin: parsing input, database sessions, API routes."""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audit.log import set_actor
from foundation.database import read_only
from foundation.dates import in_range
from foundation.errors import BadRequest, BadValue, Invalid, NotFound, RequestTimeout
from foundation.scoping import limit_to
from server.auth import current_staff, request_actor, staff_scope

M = TypeVar("M", bound=BaseModel)
MAX_JSON_BYTES = 1_000_000
MAX_ID = 2**63 - 1  # the largest integer the databases store
_DIGITS = re.compile(r"[0-9]{1,18}")  # ASCII only: str.isdigit() also takes '³' and '٣'


def is_number(text: str) -> bool:
    """Whether the text is a whole number of 1 to 18 ASCII digits (an id or a length)."""
    return _DIGITS.fullmatch(text) is not None


def validation_error(exc: ValidationError) -> Invalid:
    """A 422 naming each bad field."""
    errors = exc.errors()
    details = [{"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]} for err in errors]
    first = details[0]
    ours = errors[0].get("ctx", {}).get("error")
    if isinstance(ours, BadValue):  # our own check's message, which the pages translate
        return Invalid([ours.part], field=first["field"], details=details)
    return Invalid("{name}: {problem}", field=first["field"], details=details, name=first["field"], problem=first["message"])


def parse(model: type[M], data: Any) -> M:
    """Validate plain data into a model; Invalid naming the bad fields."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


async def read_json(request: Request, model: type[M]) -> M:
    """The request's JSON body validated into a model."""
    body = await request.body()
    if len(body) > MAX_JSON_BYTES:
        raise BadRequest("request body too large")
    try:
        data = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON", field="body") from None
    except RecursionError:
        raise BadRequest("the request body is nested too deeply", field="body") from None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object", field="body")
    return parse(model, data)


def path_id(request: Request, name: str = "id") -> int:
    """A numeric id from the path; NotFound when it is not a positive number in range."""
    raw = request.path_params[name]
    if not is_number(str(raw)):
        raise NotFound("no such {name}", name=name)
    return int(raw)


def parse_date(text: str) -> dt.date:
    """A YYYY-MM-DD date an office can mean (foundation/dates.py; ValueError otherwise)."""
    return in_range(dt.date.fromisoformat(text))


def parse_count(text: str) -> int:
    """A whole number from 0 to MAX_ID (ValueError otherwise)."""
    value = int(text)
    if not 0 <= value <= MAX_ID:
        raise ValueError("number out of range")
    return value


def query_param(request: Request, name: str, parse_value: Callable[[str], Any], default: Any = None) -> Any:
    """A parsed query parameter; Invalid naming it when it cannot be parsed."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse_value(raw)
    except (ValueError, TypeError, LookupError):
        raise Invalid("bad value for query parameter '{name}'", name=name, field=name) from None


SAFE_METHODS = frozenset({"GET", "HEAD"})


@contextlib.asynccontextmanager
async def transaction(request: Request) -> AsyncIterator[AsyncSession]:
    """A database session inside one transaction, committed on success; changes are logged as
    the logged-in staff member's or expert's (invite links name their participant themselves).
    A staff member's session sees only their offices (foundation/scoping.py): every route goes
    through here, so none can forget it.

    A GET or HEAD only reads: its transaction is a read-only snapshot that takes no write lock,
    so reads never wait behind bookings (and a write in one is refused as a bug)."""
    async with request.app.state.db_sessions() as db, db.begin():
        if request.method in SAFE_METHODS:
            await read_only(db)
        staff = current_staff(request)
        set_actor(db, request_actor(request), office_id=staff.office_id if staff is not None else None)
        if staff is not None:
            limit_to(db, await staff_scope(db, staff))
        yield db


class BodyDeadline:
    """A request body must keep arriving: by `base_s` after the request began plus what has
    arrived at `min_bps`, or the request is answered 408 (RequestTimeout, raised where the handler
    reads the body, so that what it held, an upload's slot and its partial file, is let go).
    uvicorn limits neither a body's time nor its rate: a body sent a byte at a time held a link's
    upload slot for as long as the sender liked."""

    def __init__(self, app: ASGIApp, base_s: float, min_bps: int) -> None:
        self.app, self.base_s, self.min_bps = app, base_s, min_bps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.monotonic()
        received = 0
        done = False

        async def timed() -> Message:
            nonlocal received, done
            if done:  # the body is in: waiting for a disconnect is not limited
                return await receive()
            try:
                async with asyncio.timeout(max(0.0, began + self.base_s + received / self.min_bps - time.monotonic())):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout("the request's body came too slowly: send it again") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                done = not message.get("more_body", False)
            return message

        await self.app(scope, timed, send)


def ok(data: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON response that keeps Chinese text readable."""
    return _Json(data, status_code=status_code, headers=headers)


class _Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":"), default=str).encode()


class ApiRoute(Route):
    """A JSON API route that also describes itself in the OpenAPI schema."""

    def __init__(
        self, path: str, endpoint: Callable[..., Any], *, methods: list[str],
        body: type[BaseModel] | None = None, tag: str = "",
    ) -> None:
        super().__init__(path, endpoint, methods=methods)
        self.body_model = body
        self.tag = tag
