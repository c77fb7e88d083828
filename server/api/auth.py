"""Log-in routes: staff passwords, expert magic links, the CSRF token."""
from __future__ import annotations

from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from experts.models import Expert
from server import accounts, mail
from server.auth import Staff, csrf_token, require_admin, current_expert_id, current_staff, log_in_expert, log_in_staff, log_out
from server.errors import Forbidden, Unauthorized
from server.http import ApiRoute, ok, read_json, transaction


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


class StaffIn(BaseModel):
    username: str = Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    password: str = Field(min_length=10, max_length=200)
    display_name: str = Field("", max_length=80)
    admin: bool = False


class MagicLinkRequest(BaseModel):
    email: str = Field(min_length=3, max_length=254)


class MagicLinkLogin(BaseModel):
    token: str = Field(min_length=10, max_length=500)


async def check_login(request: Request, username: str, password: str) -> Staff:
    """Check a staff password (throttled) and start the session."""
    settings = request.app.state.settings
    async with transaction(request) as db:
        user = await accounts.authenticate(
            db, username, password,
            max_failures=settings.login_max_failures, window_s=settings.login_window_s,
        )
        staff = Staff(user.id, user.role, user.office_id) if user else None
    if staff is None:
        raise Unauthorized("wrong user name or password")
    log_in_staff(request, staff)
    return staff


async def sign_in_expert(request: Request, token: str) -> int:
    """Spend an expert's magic link and start their session."""
    settings = request.app.state.settings
    link = request.app.state.tokens.read_magic_link(token, settings.magic_link_max_age_s)
    async with transaction(request) as db:
        expert = await db.get(Expert, link.expert_id)
        if expert is None or not expert.active:
            raise Forbidden("this expert account is not active")
        await accounts.spend_token(db, link.token_id)
    log_in_expert(request, link.expert_id)
    return link.expert_id


async def send_magic_link(request: Request, email: str) -> None:
    """E-mail a sign-in link to the expert with this address, if there is one."""
    state = request.app.state
    async with transaction(request) as db:
        expert = await db.scalar(select(Expert).where(Expert.email == email.strip().lower()))
        found = (expert.id, expert.name, expert.email) if expert is not None and expert.active else None
    if found is None:
        return
    link = f"{state.settings.base_url}/expert/login?token={state.tokens.magic_link(found[0])}"
    await mail.send(
        state.settings, found[2], "调解专家登录链接 / Tiaojie sign-in link",
        f"{found[1]}，您好：\n\n请点击以下链接登录调解专家门户（{state.settings.magic_link_max_age_s // 60} 分钟内有效，仅可使用一次）：\n{link}\n",
    )


async def login(request: Request) -> Response:
    """Log in as staff with a user name and password."""
    data = await read_json(request, LoginIn)
    staff = await check_login(request, data.username, data.password)
    return ok({"id": staff.id, "role": staff.role, "csrf_token": csrf_token(request)})


async def logout(request: Request) -> Response:
    """End the session."""
    log_out(request)
    return ok({"logged_out": True})


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
    ApiRoute("/api/auth/login", login, methods=["POST"], body=LoginIn, tag="auth"),
    ApiRoute("/api/auth/logout", logout, methods=["POST"], tag="auth"),
    ApiRoute("/api/auth/me", me, methods=["GET"], tag="auth"),
    ApiRoute("/api/auth/csrf", csrf, methods=["GET"], tag="auth"),
    ApiRoute("/api/auth/magic-link", request_magic_link, methods=["POST"], body=MagicLinkRequest, tag="auth"),
    ApiRoute("/api/auth/expert-login", expert_login, methods=["POST"], body=MagicLinkLogin, tag="auth"),
]
