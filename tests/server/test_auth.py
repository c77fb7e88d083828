"""Staff passwords, throttling, session cookies, CSRF, expert magic links and their limits."""
from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from typing import Any
from unittest import mock

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from accounts.models import StaffUser
from accounts.service import account_failures, set_active
from foundation.config import Settings
from foundation.database import utcnow
from foundation.errors import Conflict
from tests.conftest import STAFF_PASSWORD, ExpertFactory, Inbox, Running, add_staff, expert_client, log_in, started, with_csrf


async def test_password_is_hashed_with_argon2(running: Running) -> None:
    await add_staff(running)
    async with running.app.state.db_sessions() as db:
        user = await db.scalar(select(StaffUser))
    assert user.password_hash.startswith("$argon2id$")
    assert STAFF_PASSWORD not in user.password_hash


async def test_wrong_password_then_throttle(running: Running) -> None:
    await add_staff(running)
    client = await with_csrf(running.client())
    for _ in range(5):
        response = await client.post("/api/auth/login", json={"username": "staff1", "password": "wrong"})
        assert response.status_code == 401
    # Locked now from this address, even with the right password, and told for how long.
    locked = await client.post("/api/auth/login", json={"username": "staff1", "password": STAFF_PASSWORD})
    assert locked.status_code == 429 and 1 <= int(locked.headers["Retry-After"]) <= 15 * 60
    assert "15 分钟后再试" in locked.json()["message"]
    assert (await client.get("/api/auth/me")).status_code == 401


def _from(running: Running, address: str) -> httpx.AsyncClient:
    """A client whose requests come from this address."""
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=running.app, client=(address, 40000)), base_url="http://test")
    running.clients.append(client)
    return client


async def test_nobody_can_lock_a_colleague_out_from_another_address(running: Running) -> None:
    await add_staff(running)
    attacker = await with_csrf(_from(running, "203.0.113.9"))
    for _ in range(6):
        await attacker.post("/api/auth/login", json={"username": "staff1", "password": "guess"})
    assert (await attacker.post("/api/auth/login", json={"username": "staff1", "password": STAFF_PASSWORD})).status_code == 429
    # The clerk at the office, with the right password, gets in (before: 429 for 15 minutes).
    clerk = await with_csrf(_from(running, "192.168.1.23"))
    assert (await clerk.post("/api/auth/login", json={"username": "staff1", "password": STAFF_PASSWORD})).status_code == 200

    # One address trying many names is stopped too, across the names.
    sprayer = await with_csrf(_from(running, "198.51.100.4"))
    answers = [(await sprayer.post("/api/auth/login", json={"username": f"user{n}", "password": "123456"})).status_code
               for n in range(21)]
    assert answers[:20] == [401] * 20 and answers[20] == 429


async def test_guessing_from_many_addresses_is_slowed_and_told_but_never_locks_the_clerk_out(running: Running) -> None:
    await add_staff(running, "clerk1")
    await add_staff(running, "boss", role="admin")
    await add_staff(running, "other-boss", role="admin", office="另一警务室")
    # The clerk logged in at her desk before: that browser keeps a signed "known device" cookie.
    desk = await with_csrf(_from(running, "192.168.1.23"))
    first = await desk.post("/api/auth/login", json={"username": "clerk1", "password": STAFF_PASSWORD})
    desk.headers["X-CSRF-Token"] = first.json()["csrf_token"]
    assert (await desk.post("/api/auth/logout")).status_code == 200
    await with_csrf(desk)

    # 30 addresses, one guess each (before: 30 x 401, every guess checked).
    answers = []
    for n in range(30):
        guesser = await with_csrf(_from(running, f"203.0.113.{n + 1}"))
        answers.append((await guesser.post("/api/auth/login", json={"username": "clerk1", "password": f"guess{n}"})).status_code)
    assert answers[:10] == [401] * 10
    assert answers.count(429) >= 10, answers  # past 10 failures each try waits a doubling delay
    async with running.app.state.db_sessions() as db:
        failures = await account_failures(db, "clerk1", utcnow() - dt.timedelta(minutes=15))
    assert 10 <= failures.count < 20 and failures.addresses == failures.count

    # A new computer waits (told for how long), the right password or not...
    laptop = await with_csrf(_from(running, "10.9.8.7"))
    waiting = await laptop.post("/api/auth/login", json={"username": "clerk1", "password": STAFF_PASSWORD})
    assert waiting.status_code == 429 and 1 <= int(waiting.headers["Retry-After"]) <= 300
    assert "秒后再试" in waiting.json()["message"]
    # ...but the clerk at her own desk gets in at once.
    assert (await desk.post("/api/auth/login", json={"username": "clerk1", "password": STAFF_PASSWORD})).status_code == 200

    # The clerk's office admin is told, once, on the home page; another office's admin is not.
    boss = await log_in(running, "boss")
    home = (await boss.get("/")).text
    assert 'id="password-guessing"' in home and "clerk1" in home and "来自 10 个地址" in home
    assert home.count("账户 clerk1") == 1
    assert 'id="password-guessing"' not in (await (await log_in(running, "other-boss")).get("/")).text
    clerk_home = (await desk.get("/")).text
    assert 'id="password-guessing"' not in clerk_home  # a clerk is not the one to act on it


async def test_a_forged_known_device_cookie_is_ignored(running: Running) -> None:
    await add_staff(running, "clerk1")
    for n in range(12):
        await (await with_csrf(_from(running, f"203.0.113.{n + 1}"))).post(
            "/api/auth/login", json={"username": "clerk1", "password": "guess"})
    forged = await with_csrf(_from(running, "10.9.8.7"))
    forged.cookies.set("tiaojie_device", URLSafeTimedSerializer("not the key", salt="tiaojie.known-device").dumps(["clerk1"]))
    assert (await forged.post("/api/auth/login", json={"username": "clerk1", "password": STAFF_PASSWORD})).status_code == 429


async def test_unknown_user_is_401(running: Running) -> None:
    client = await with_csrf(running.client())
    response = await client.post("/api/auth/login", json={"username": "nobody", "password": "x"})
    assert response.status_code == 401


async def test_tampered_session_cookie_is_ignored(staff_client: httpx.AsyncClient, running: Running) -> None:
    assert (await staff_client.get("/api/auth/me")).json()["kind"] == "staff"
    cookie = staff_client.cookies["tiaojie_session"]
    forged = running.client()
    forged.cookies.set("tiaojie_session", cookie[:-3] + ("aaa" if not cookie.endswith("aaa") else "bbb"))
    assert (await forged.get("/api/auth/me")).status_code == 401
    assert (await forged.get("/api/experts")).status_code == 401


async def test_unsafe_request_without_csrf_is_403(staff_client: httpx.AsyncClient) -> None:
    token = staff_client.headers.pop("X-CSRF-Token")
    body = {"title": "t", "dispute_type": "neighbour"}
    assert (await staff_client.post("/api/disputes", json=body)).status_code == 403
    staff_client.headers["X-CSRF-Token"] = "wrong"
    assert (await staff_client.post("/api/disputes", json=body)).status_code == 403
    staff_client.headers["X-CSRF-Token"] = token
    assert (await staff_client.post("/api/disputes", json=body)).status_code == 201


async def test_login_form_post_needs_csrf_token(running: Running) -> None:
    await add_staff(running)
    client = running.client()
    page = await client.get("/login")
    assert page.status_code == 200 and "工作人员登录" in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    without = await client.post("/login", data={"username": "staff1", "password": STAFF_PASSWORD})
    assert without.status_code == 403
    wrong = await client.post("/login", data={"username": "staff1", "password": "bad", "csrf_token": token})
    assert wrong.status_code == 401 and "用户名或密码错误" in wrong.text
    ok = await client.post("/login", data={"username": "staff1", "password": STAFF_PASSWORD, "csrf_token": token})
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    home = await client.get("/")
    assert home.status_code == 200 and "工作台" in home.text


async def test_english_switch(running: Running) -> None:
    client = running.client()
    page = await client.get("/login?lang=en")
    assert "Staff login" in page.text
    assert "Staff login" in (await client.get("/login")).text  # the cookie remembers


async def test_magic_link_is_single_use(running: Running, make_expert: ExpertFactory) -> None:
    expert = await make_expert()
    token = running.app.state.tokens.magic_link(expert["id"])
    first = await with_csrf(running.client())
    assert (await first.post("/api/auth/expert-login", json={"token": token})).status_code == 200
    second = await with_csrf(running.client())
    reused = await second.post("/api/auth/expert-login", json={"token": token})
    assert reused.status_code == 401 and "already" in reused.json()["error"]


async def test_expired_and_tampered_magic_links(running: Running, make_expert: ExpertFactory, settings: Settings) -> None:
    expert = await make_expert()
    client = await with_csrf(running.client())
    old = URLSafeTimedSerializer(settings.secret_key, salt="tiaojie.magic-link")
    # A token signed 2 hours ago (the limit is 30 minutes).
    with mock.patch("time.time", return_value=time.time() - 7200):
        expired = old.dumps({"e": expert["id"], "j": "old"})
    response = await client.post("/api/auth/expert-login", json={"token": expired})
    assert response.status_code == 401 and "expired" in response.json()["error"]
    good = running.app.state.tokens.magic_link(expert["id"])
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    assert (await client.post("/api/auth/expert-login", json={"token": tampered})).status_code == 401


async def test_expert_edits_only_self(running: Running, make_expert: ExpertFactory) -> None:
    me = await make_expert()
    other = await make_expert()
    client = await expert_client(running, me["id"])
    window = {"windows": [{"weekday": 1, "start": "09:00", "end": "11:00"}]}
    assert (await client.put(f"/api/experts/{me['id']}/availability", json=window)).status_code == 200
    assert (await client.put(f"/api/experts/{other['id']}/availability", json=window)).status_code == 403
    assert (await client.patch(f"/api/experts/{other['id']}", json={"phone": "1"})).status_code == 403
    assert (await client.patch(f"/api/experts/{me['id']}", json={"phone": "13907370000"})).json()["phone"] == "13907370000"
    # Not their own priority or role either, and not staff data.
    refused = await client.patch(f"/api/experts/{me['id']}", json={"priority": 1})
    assert refused.status_code == 403 and refused.json()["field"] == "priority"
    assert (await client.get("/api/disputes")).status_code == 401


async def test_magic_link_by_real_smtp(make_settings: Any, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    settings = make_settings(smtp_host="127.0.0.1", smtp_port=port)
    async with started(settings) as running:
        await add_staff(running)
        staff = await log_in(running)
        await staff.post("/api/experts", json={"name": "李敏", "role": "lawyer", "email": "limin@example.cn"})

        visitor = await with_csrf(running.client())
        unknown = await visitor.post("/api/auth/magic-link", json={"email": "nobody@example.cn"})
        assert unknown.status_code == 202 and inbox.messages == []
        sent = await visitor.post("/api/auth/magic-link", json={"email": "LiMin@example.cn"})
        assert sent.status_code == 202
        await asyncio.wait_for(inbox.arrived.wait(), 5)
        mail = inbox.messages[0]
        assert mail["To"] == "limin@example.cn"
        body = mail.get_payload(decode=True).decode()
        link = re.search(r"http://test(/expert/login\?token=\S+)", body).group(1)

        page = await visitor.get(link)  # a GET shows a button, it does not spend the token
        assert page.status_code == 200
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        token = re.search(r'name="token" value="([^"]+)"', page.text).group(1)
        signed_in = await visitor.post("/expert/login", data={"csrf_token": csrf, "token": token})
        assert signed_in.status_code == 303
        assert (await visitor.get("/api/auth/me")).json()["kind"] == "expert"
        portal = await visitor.get("/expert")
        assert "李敏" in portal.text


async def test_only_admins_create_staff(running: Running, staff_client: httpx.AsyncClient) -> None:
    body = {"username": "wang.li", "password": "a long password", "display_name": "王力"}
    refused = await staff_client.post("/api/staff", json=body)
    assert refused.status_code == 403
    await add_staff(running, "chief", role="admin")
    admin = await log_in(running, "chief")
    created = await admin.post("/api/staff", json=body)
    assert created.status_code == 201 and created.json()["role"] == "staff"
    assert (await admin.post("/api/staff", json=body)).status_code == 409
    short = await admin.post("/api/staff", json={**body, "username": "x1", "password": "short"})
    assert short.status_code == 422 and short.json()["field"] == "password"


def _copy(running: Running, client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Another client holding the same cookies (a stolen or saved copy of the cookie)."""
    copy = running.client()
    copy.cookies = httpx.Cookies(client.cookies)
    copy.headers["X-CSRF-Token"] = client.headers["X-CSRF-Token"]
    return copy


async def test_logout_ends_the_session_on_the_server(running: Running, staff_client: httpx.AsyncClient) -> None:
    saved = _copy(running, staff_client)
    assert (await saved.get("/api/auth/me")).status_code == 200
    assert (await staff_client.post("/api/auth/logout")).status_code == 200
    # The signed cookie is still well-formed and unexpired, but its login has ended.
    assert (await saved.get("/api/auth/me")).status_code == 401
    assert (await saved.get("/api/disputes")).status_code == 401
    page = await saved.get("/disputes")
    assert page.status_code == 303 and page.headers["location"].startswith("/login")


async def test_expert_logout_ends_the_session(running: Running, make_expert: ExpertFactory) -> None:
    expert = await make_expert()
    client = await expert_client(running, expert["id"])
    saved = _copy(running, client)
    assert (await client.post("/api/auth/logout")).status_code == 200
    assert (await saved.get("/api/auth/me")).status_code == 401


async def test_new_password_ends_every_other_session(running: Running, staff_client: httpx.AsyncClient) -> None:
    elsewhere = await log_in(running)
    new = "a new horse battery staple"
    wrong = await staff_client.post("/api/auth/password", json={"current_password": "nope", "new_password": new})
    assert wrong.status_code == 403 and wrong.json()["message"] == "当前密码不正确"
    changed = await staff_client.post("/api/auth/password", json={"current_password": STAFF_PASSWORD, "new_password": new})
    assert changed.status_code == 200
    assert (await elsewhere.get("/api/auth/me")).status_code == 401
    assert (await staff_client.get("/api/auth/me")).status_code == 200  # this one goes on
    fresh = await with_csrf(running.client())
    assert (await fresh.post("/api/auth/login", json={"username": "staff1", "password": STAFF_PASSWORD})).status_code == 401
    assert (await fresh.post("/api/auth/login", json={"username": "staff1", "password": new})).status_code == 200


async def test_disabled_account_is_logged_out_and_cannot_log_in(running: Running, staff_client: httpx.AsyncClient) -> None:
    await add_staff(running, "chief", role="admin")
    admin = await log_in(running, "chief")
    me = (await staff_client.get("/api/auth/me")).json()
    assert (await staff_client.patch(f"/api/staff/{me['id']}", json={"active": False})).status_code == 403
    disabled = await admin.patch(f"/api/staff/{me['id']}", json={"active": False})
    assert disabled.status_code == 200 and disabled.json()["active"] is False
    assert (await staff_client.get("/api/auth/me")).status_code == 401
    again = await with_csrf(running.client())
    assert (await again.post("/api/auth/login", json={"username": "staff1", "password": STAFF_PASSWORD})).status_code == 401
    assert (await admin.patch("/api/staff/999", json={"active": True})).status_code == 404


async def test_nobody_disables_their_own_account_or_the_last_active_admin(running: Running) -> None:
    await add_staff(running, "chief", role="admin")
    chief = await log_in(running, "chief")
    me = (await chief.get("/api/auth/me")).json()
    own = await chief.patch(f"/api/staff/{me['id']}", json={"active": False})
    assert own.status_code == 409 and own.json()["field"] == "active"
    await add_staff(running, "deputy", role="admin")
    deputy = await log_in(running, "deputy")
    deputy_id = (await deputy.get("/api/auth/me")).json()["id"]
    assert (await chief.patch(f"/api/staff/{deputy_id}", json={"active": False})).status_code == 200
    # Now the chief is the last active admin: the deputy, enabled again, may not disable it.
    assert (await chief.patch(f"/api/staff/{deputy_id}", json={"active": True})).status_code == 200
    deputy = await log_in(running, "deputy")
    assert (await deputy.patch(f"/api/staff/{me['id']}", json={"active": False})).status_code == 200
    last = await deputy.patch(f"/api/staff/{deputy_id}", json={"active": False})
    assert last.status_code == 409 and (await deputy.get("/api/auth/me")).status_code == 200


async def test_the_last_active_admin_is_never_disabled(running: Running) -> None:
    await add_staff(running, "chief", role="admin")
    async with await running.db() as db, db.begin():
        chief = await db.scalar(select(StaffUser).where(StaffUser.username == "chief"))
        with pytest.raises(Conflict):
            await set_active(db, chief, False)
