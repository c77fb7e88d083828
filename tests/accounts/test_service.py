"""Staff accounts without HTTP: the login throttle, the last administrator, single-use tokens."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from accounts import service as accounts
from accounts.models import LoginFailure
from foundation.config import Settings
from foundation.database import create_engine, create_session_factory
from foundation.errors import Conflict, TooManyRequests, Unauthorized

THROTTLE = accounts.Throttle(window_s=600, per_account=3, per_address=5)


@pytest.fixture
async def db(make_settings: Callable[..., Settings]) -> AsyncIterator[Callable[[], Any]]:
    engine = create_engine(make_settings().database_url)
    yield create_session_factory(engine)
    await engine.dispose()


async def _try(db: Callable[[], AsyncSession], username: str, password: str, address: str) -> bool:
    async with db() as session, session.begin():
        return await accounts.authenticate(session, username, password, address=address, throttle=THROTTLE) is not None


async def test_failures_lock_one_account_from_one_address_only(db: Callable[[], AsyncSession]) -> None:
    async with db() as session, session.begin():
        await accounts.create_staff(session, "li", "correct horse")
        await accounts.create_staff(session, "wang", "battery staple")
    for _ in range(3):
        assert not await _try(db, "li", "wrong", "10.0.0.9")
    with pytest.raises(TooManyRequests) as refused:
        await _try(db, "li", "correct horse", "10.0.0.9")
    assert refused.value.headers["Retry-After"].isdigit()
    # The colleague at her own desk still gets in, and the same address may still log in as someone else.
    assert await _try(db, "li", "correct horse", "10.0.0.2")
    assert await _try(db, "wang", "battery staple", "10.0.0.9")


async def test_one_address_trying_many_names_is_stopped(db: Callable[[], AsyncSession]) -> None:
    async with db() as session, session.begin():
        await accounts.create_staff(session, "li", "correct horse")
    for name in ("a", "b", "c", "d", "e"):
        assert not await _try(db, name, "guess", "10.0.0.66")
    with pytest.raises(TooManyRequests):
        await _try(db, "li", "correct horse", "10.0.0.66")
    assert await _try(db, "li", "correct horse", "10.0.0.2")


async def test_the_last_active_administrator_cannot_be_disabled(db: Callable[[], AsyncSession]) -> None:
    async with db() as session, session.begin():
        first = await accounts.create_staff(session, "admin1", "pw-one-two", role="admin")
        second = await accounts.create_staff(session, "admin2", "pw-one-two", role="admin")
        await accounts.set_active(session, first, False)
        with pytest.raises(Conflict):
            await accounts.set_active(session, second, False)
        assert second.active and not first.active


async def test_a_disabled_account_and_a_new_password_end_its_logins(db: Callable[[], AsyncSession]) -> None:
    async with db() as session, session.begin():
        user = await accounts.create_staff(session, "li", "correct horse")
        before = await accounts.start_session(session, lifetime_s=3600, staff_id=user.id)
        assert await accounts.session_is_live(session, before)
        await accounts.set_password(session, user, "a new one")
        assert not await accounts.session_is_live(session, before)
        after = await accounts.start_session(session, lifetime_s=3600, staff_id=user.id)
        await accounts.set_active(session, user, False)
        assert not await accounts.session_is_live(session, after)
    assert not await _try(db, "li", "a new one", "10.0.0.2")


async def test_a_token_is_spent_once(db: Callable[[], AsyncSession]) -> None:
    async with db() as session, session.begin():
        await accounts.spend_token(session, "t-1")
    async with db() as session, session.begin():
        with pytest.raises(Unauthorized):
            await accounts.spend_token(session, "t-1")


def test_the_delay_for_guessing_doubles_up_to_its_cap() -> None:
    throttle = accounts.Throttle(window_s=900, per_account=5, per_address=20, per_account_anywhere=10, max_delay_s=300)
    assert [accounts.guessing_delay_s(n, throttle) for n in (0, 9, 10, 11, 12, 13, 17, 18, 40, 10_000)] == \
        [0, 0, 1, 2, 4, 8, 128, 256, 300, 300]


async def test_a_known_device_never_waits_for_the_guessing_delay(db: Callable[[], AsyncSession]) -> None:
    throttle = accounts.Throttle(window_s=600, per_account=3, per_address=5, per_account_anywhere=4, max_delay_s=300)
    async with db() as session, session.begin():
        await accounts.create_staff(session, "li", "correct horse")
        session.add_all([LoginFailure(username="li", address=f"10.1.0.{n}") for n in range(12)])  # delay 256 s
    async with db() as session, session.begin():
        with pytest.raises(TooManyRequests) as refused:
            await accounts.authenticate(session, "li", "correct horse", address="10.0.0.2", throttle=throttle)
    assert 200 < int(refused.value.headers["Retry-After"]) <= 257
    async with db() as session, session.begin():
        assert await accounts.authenticate(session, "li", "correct horse", address="10.0.0.2", throttle=throttle,
                                           known_device=True) is not None
