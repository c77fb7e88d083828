"""Log-in routes: staff passwords, expert magic links, the CSRF token."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from accounts import service as accounts
from accounts.models import StaffUser
from experts.models import Office
from foundation.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from server.auth import (
    csrf_token,
    current_expert_id,
    current_staff,
    log_in_staff,
    require_admin,
    require_staff,
    staff_identity,
)
from server.http import ApiRoute, ok, path_id, read_json, transaction
from server.logins import check_login, log_out, remember_device, send_magic_link, sign_in_expert


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


class StaffIn(BaseModel):
    username: str = Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    password: str = Field(min_length=10, max_length=200)
    display_name: str = Field("", max_length=80)
    # staff (a clerk) | admin (an office admin) | supervisor | sysadmin; `admin: true` is role admin
    role: Literal["staff", "admin", "supervisor", "sysadmin"] = "staff"
    admin: bool = False
    # The office (a clerk's, an office admin's) or level (a supervisor's); default the creator's own.
    office_id: int | None = Field(None, ge=1)


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=10, max_length=200)


class StaffPatch(BaseModel):
    active: bool | None = None
    password: str | None = Field(None, min_length=10, max_length=200)


class MagicLinkRequest(BaseModel):
    email: str = Field(min_length=3, max_length=254)


class MagicLinkLogin(BaseModel):
    token: str = Field(min_length=10, max_length=500)


async def login(request: Request) -> Response:
    """Log in as staff with a user name and password."""
    data = await read_json(request, LoginIn)
    staff = await check_login(request, data.username, data.password)
    response = ok({"id": staff.id, "role": staff.role, "csrf_token": csrf_token(request)})
    remember_device(request, response, data.username)
    return response


async def logout(request: Request) -> Response:
    """End the session."""
    await log_out(request)
    return ok({"logged_out": True})


async def change_password(request: Request) -> Response:
    """A staff member changes their own password: every other session of theirs ends."""
    staff = require_staff(request)
    data = await read_json(request, PasswordChange)
    async with transaction(request) as db:
        user = await db.get(StaffUser, staff.id)
        if user is None or not accounts.verify_password(user.password_hash, data.current_password):
            raise Forbidden("the current password is wrong", field="current_password")
        await accounts.set_password(db, user, data.new_password)
        session_id = await accounts.start_session(
            db, staff_id=staff.id, lifetime_s=request.app.state.settings.session_max_age_s)
    request.app.state.live_logins.forget()
    log_in_staff(request, staff, session_id, staff_identity(request))
    return ok({"changed": True, "csrf_token": csrf_token(request)})


async def update_staff_account(request: Request) -> Response:
    """Disable or enable a staff account, or set its password (administrators only); either
    ends the account's sessions."""
    admin = require_admin(request)
    data = await read_json(request, StaffPatch)
    async with transaction(request) as db:
        user = await db.get(StaffUser, path_id(request))
        if user is None:
            raise NotFound("no staff account with id {staff_id}", staff_id=request.path_params["id"])
        if data.active is False and user.id == admin.id:
            raise Conflict("you cannot disable your own account", field="active")
        if data.active is not None:
            await accounts.set_active(db, user, data.active)
        if data.password is not None:
            await accounts.set_password(db, user, data.password)
        result = accounts.account_view(user)
    request.app.state.live_logins.forget()
    if data.active is False:
        await request.app.state.room_sockets.check()  # the host links it held end now (other nodes: their sweep)
    return ok(result)


async def me(request: Request) -> Response:
    """Who the session belongs to."""
    staff = current_staff(request)
    if staff is not None:
        name, office = staff_identity(request)
        return ok({"kind": "staff", "id": staff.id, "role": staff.role, "name": name,
                   "office_id": staff.office_id, "office": office})
    expert_id = current_expert_id(request)
    if expert_id is not None:
        return ok({"kind": "expert", "id": expert_id})
    raise Unauthorized("not signed in")


async def csrf(request: Request) -> Response:
    """The session's CSRF token, to send as X-CSRF-Token on every change."""
    return ok({"csrf_token": csrf_token(request)})


async def request_magic_link(request: Request) -> Response:
    """E-mail an expert a single-use sign-in link (the answer never says whether one exists)."""
    data = await read_json(request, MagicLinkRequest)
    await send_magic_link(request, data.email)
    return ok({"sent": True}, 202)


async def expert_login(request: Request) -> Response:
    """Sign in as an expert with the token from a magic link."""
    data = await read_json(request, MagicLinkLogin)
    expert_id = await sign_in_expert(request, data.token)
    return ok({"kind": "expert", "id": expert_id, "csrf_token": csrf_token(request)})


async def create_staff_account(request: Request) -> Response:
    """Add a staff account in an office with a role: an office admin adds clerks and admins to
    their own office; the system administrator adds any account anywhere (a supervisor to a level)."""
    admin = require_admin(request)
    data = await read_json(request, StaffIn)
    role = "admin" if data.admin else data.role
    unit_id = data.office_id or admin.office_id
    if admin.role != "sysadmin" and (role not in ("staff", "admin") or unit_id != admin.office_id):
        raise Forbidden("an office admin adds clerks and admins to their own office only", field="role")
    async with transaction(request) as db:
        unit = await db.get(Office, unit_id) if unit_id is not None else None
        if unit is None:
            raise NotFound("no office with id {office_id}", office_id=unit_id, field="office_id")
        if (unit.kind == "level") != (role in ("supervisor", "sysadmin")):
            raise Invalid("a supervisor belongs to a level, a clerk or office admin to an office", field="office_id")
        user = await accounts.create_staff(
            db, data.username, data.password, role=role, display_name=data.display_name, office_id=unit.id,
        )
        return ok(accounts.account_view(user), 201)


async def list_staff_accounts(request: Request) -> Response:
    """The staff accounts an administrator manages: their office's (the system administrator: all)."""
    require_admin(request)
    async with transaction(request) as db:
        return ok(await accounts.list_accounts(db))


routes = [
    ApiRoute("/api/staff", list_staff_accounts, methods=["GET"], tag="auth"),
    ApiRoute("/api/staff", create_staff_account, methods=["POST"], body=StaffIn, tag="auth"),
    ApiRoute("/api/staff/{id}", update_staff_account, methods=["PATCH"], body=StaffPatch, tag="auth"),
    ApiRoute("/api/auth/password", change_password, methods=["POST"], body=PasswordChange, tag="auth"),
    ApiRoute("/api/auth/login", login, methods=["POST"], body=LoginIn, tag="auth"),
    ApiRoute("/api/auth/logout", logout, methods=["POST"], tag="auth"),
    ApiRoute("/api/auth/me", me, methods=["GET"], tag="auth"),
    ApiRoute("/api/auth/csrf", csrf, methods=["GET"], tag="auth"),
    ApiRoute("/api/auth/magic-link", request_magic_link, methods=["POST"], body=MagicLinkRequest, tag="auth"),
    ApiRoute("/api/auth/expert-login", expert_login, methods=["POST"], body=MagicLinkLogin, tag="auth"),
]
