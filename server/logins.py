"""Logging staff in and out, and expert sign-in by magic link: shared by the JSON routes
(`server/api/auth.py`) and the pages (`web/pages.py`)."""
from __future__ import annotations

from sqlalchemy import select
from starlette.requests import Request

from accounts import service as accounts
from experts.models import Expert, Office
from foundation import mail
from foundation.errors import Forbidden, Unauthorized
from server.auth import Staff, log_in_expert, log_in_staff, login_session_id
from server.http import transaction


async def check_login(request: Request, username: str, password: str) -> Staff:
    """Check a staff password (throttled) and start the session."""
    settings = request.app.state.settings
    async with transaction(request) as db:
        user = await accounts.authenticate(
            db, username, password, address=request.client.host if request.client else "",
            throttle=accounts.Throttle(settings.login_window_s, settings.login_max_failures,
                                       settings.login_max_address_failures),
        )
        staff = Staff(user.id, user.role, user.office_id) if user else None
        if staff is not None:
            session_id = await accounts.start_session(db, staff_id=staff.id, lifetime_s=settings.session_max_age_s)
            office = await db.get(Office, staff.office_id) if staff.office_id is not None else None
            who = (user.display_name if user else "", office.name if office else "")
    if staff is None:
        raise Unauthorized("wrong user name or password")
    log_in_staff(request, staff, session_id, who)
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
        session_id = await accounts.start_session(db, expert_id=link.expert_id, lifetime_s=settings.session_max_age_s)
    log_in_expert(request, link.expert_id, session_id)
    return link.expert_id



async def send_magic_link(request: Request, email: str) -> None:
    """E-mail a sign-in link to the expert with this address, if there is one."""
    state = request.app.state
    async with transaction(request) as db:
        expert = await db.scalar(select(Expert).where(Expert.email == email.strip().lower()))
        found = (expert.id, expert.name, expert.email) if expert is not None and expert.active else None
    if found is None:
        return
    link = f"{state.settings.link_base()}/expert/login?token={state.tokens.magic_link(found[0])}"
    await mail.send(
        state.settings, found[2], "调解专家登录链接 / Tiaojie sign-in link",
        f"{found[1]}，您好：\n\n请点击以下链接登录调解专家门户（{state.settings.magic_link_max_age_s // 60} 分钟内有效，仅可使用一次）：\n{link}\n",
    )



async def log_out(request: Request) -> None:
    """End the login on the server, then forget it in the cookie."""
    session_id = login_session_id(request)
    if session_id is not None:
        async with transaction(request) as db:
            await accounts.end_session(db, session_id)
        request.app.state.live_logins.forget()
    request.session.clear()
