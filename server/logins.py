"""Logging staff in and out, and expert sign-in by magic link: shared by the JSON routes
(`server/api/auth.py`) and the pages (`server/pages/portal.py`)."""
from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from accounts import service as accounts
from accounts.models import StaffUser
from audit.models import AuditEntry
from experts.models import Expert, Office
from foundation import mail
from foundation.database import utcnow
from foundation.errors import Forbidden, Unauthorized
from server.auth import Staff, log_in_expert, log_in_staff, login_session_id
from server.http import transaction

logger = logging.getLogger(__name__)
# A browser an account logged in on keeps this signed cookie: its logins never wait out the
# delay that guessing from elsewhere puts on the account.
DEVICE_COOKIE = "tiaojie_device"
DEVICE_MAX_AGE_S = 180 * 86400
DEVICE_ACCOUNTS = 8  # a shared office terminal: the last few accounts that logged in on it
GUESSING = "login.guessing"  # the audit action that tells an account's admins


def _known_accounts(request: Request) -> tuple[str, ...]:
    token = request.cookies.get(DEVICE_COOKIE)
    return request.app.state.tokens.read_known_device(token, DEVICE_MAX_AGE_S) if token else ()


def remember_device(request: Request, response: Response, username: str) -> None:
    """After a login: this browser is one the account uses."""
    known = (username, *(u for u in _known_accounts(request) if u != username))[:DEVICE_ACCOUNTS]
    response.set_cookie(DEVICE_COOKIE, request.app.state.tokens.known_device(known), max_age=DEVICE_MAX_AGE_S,
                        httponly=True, samesite="lax", secure=request.app.state.settings.https_only_cookies)


async def _tell_admins(db: AsyncSession, username: str, throttle: accounts.Throttle) -> None:
    """When an account's failures from everywhere reach the point where its logins slow down,
    the audit log says so for its office; the office admins' home page shows it."""
    failures = await accounts.account_failures(db, username, utcnow() - dt.timedelta(seconds=throttle.window_s))
    if failures.count != throttle.per_account_anywhere:
        return
    user = await db.scalar(select(StaffUser).where(StaffUser.username == username))
    if user is None:
        return
    logger.warning("%d failed logins for %s from %d addresses: its logins are slowed", failures.count, username, failures.addresses)
    db.add(AuditEntry(actor="system", action=GUESSING, entity="staff_users", entity_id=user.id, office_id=user.office_id,
                      before=None, after={"username": username, "failures": failures.count, "addresses": failures.addresses,
                                          "window_min": throttle.window_s // 60}))


async def check_login(request: Request, username: str, password: str) -> Staff:
    """Check a staff password (throttled) and start the session; the caller then calls
    `remember_device` on its response."""
    settings = request.app.state.settings
    throttle = accounts.Throttle(settings.login_window_s, settings.login_max_failures, settings.login_max_address_failures,
                                 settings.login_max_account_failures, settings.login_max_delay_s)
    async with transaction(request) as db:
        user = await accounts.authenticate(
            db, username, password, address=request.client.host if request.client else "", throttle=throttle,
            known_device=username in _known_accounts(request),
        )
        if user is None:
            await _tell_admins(db, username, throttle)
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
