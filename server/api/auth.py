"""Log-in routes: staff passwords, expert magic links, the CSRF token."""
from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from accounts import service as accounts
from accounts.models import StaffUser
from foundation.errors import Conflict, Forbidden, NotFound, Unauthorized
from server.auth import (
    csrf_token,
    current_expert_id,
    current_staff,
    log_in_staff,
    require_admin,
    require_staff,
)
from server.http import ApiRoute, ok, path_id, read_json, transaction
from server.logins import check_login, log_out, send_magic_link, sign_in_expert


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


class StaffIn(BaseModel):
    username: str = Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    password: str = Field(min_length=10, max_length=200)
    display_name: str = Field("", max_length=80)
    admin: bool = False


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
    return ok({"id": staff.id, "role": staff.role, "csrf_token": csrf_token(request)})


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
    log_in_staff(request, staff, session_id)
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
        result = {"id": user.id, "username": user.username, "role": user.role, "active": user.active}
    request.app.state.live_logins.forget()
    return ok(result)


async def me(request: Request) -> Response:
    """Who the session belongs to."""
    staff = current_staff(request)
    if staff is not None:
        return ok({"kind": "staff", "id": staff.id, "role": staff.role})
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
    """Add a staff account (administrators only)."""
    admin = require_admin(request)
    data = await read_json(request, StaffIn)
    async with transaction(request) as db:
        user = await accounts.create_staff(
            db, data.username, data.password, role="admin" if data.admin else "staff",
            display_name=data.display_name, office_id=admin.office_id,
        )
        return ok({"id": user.id, "username": user.username, "role": user.role}, 201)


routes = [
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
