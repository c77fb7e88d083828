"""Staff accounts: passwords, logins and their throttle, login sessions, single-use tokens."""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, distinct, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import LoginFailure, LoginSession, StaffUser, UsedToken
from foundation.database import utcnow
from foundation.errors import Conflict, TooManyRequests, Unauthorized
from foundation.scoping import across_offices

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of the password."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether the password matches the hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def create_staff(
    db: AsyncSession, username: str, password: str, *, role: str = "staff",
    display_name: str = "", office_id: int | None = None,
) -> StaffUser:
    """Add a staff account; Conflict if the user name is taken."""
    if await db.scalar(across_offices(select(StaffUser.id).where(StaffUser.username == username))):  # unique everywhere
        raise Conflict("user name '{username}' is taken", username=username, field="username")
    user = StaffUser(
        username=username, password_hash=hash_password(password), role=role,
        display_name=display_name or username, office_id=office_id,
    )
    db.add(user)
    await db.flush()
    return user


def account_view(user: StaffUser) -> dict[str, object]:
    """A staff account as the API and the pages show it (never its password hash)."""
    return {"id": user.id, "username": user.username, "display_name": user.display_name, "role": user.role,
            "office_id": user.office_id, "active": user.active}


async def list_accounts(db: AsyncSession) -> list[dict[str, object]]:
    """The staff accounts the database session's scope holds, by office and name."""
    return [account_view(u) for u in await db.scalars(select(StaffUser).order_by(StaffUser.office_id, StaffUser.username))]


@dataclasses.dataclass(frozen=True)
class Throttle:
    """Failed logins allowed within `window_s`: for one account from one address, and from one
    address across all accounts (someone trying many names). Past `per_account_anywhere`
    failures of one account from any addresses (guessing spread over many), each further try on
    it waits a delay that doubles with every failure, up to `max_delay_s`, except from a device
    the account logged in on before."""

    window_s: int
    per_account: int
    per_address: int
    per_account_anywhere: int = 10
    max_delay_s: int = 300


@dataclasses.dataclass(frozen=True)
class Failures:
    """An account's failed logins within the throttle's window, from every address."""

    count: int
    addresses: int
    last: dt.datetime | None


async def account_failures(db: AsyncSession, username: str, since: dt.datetime) -> Failures:
    """How often the account failed since then, from how many addresses, and when last."""
    count, addresses, last = (await db.execute(
        select(func.count(), func.count(distinct(LoginFailure.address)), func.max(LoginFailure.at))
        .where(LoginFailure.username == username, LoginFailure.at >= since))).one()
    return Failures(count, addresses, last)


def guessing_delay_s(failures: int, throttle: Throttle) -> int:
    """How long after its last failure an account waits for its next try (0: none)."""
    over = failures - throttle.per_account_anywhere
    return 0 if over < 0 else min(throttle.max_delay_s, 2 ** min(over, 20))


async def authenticate(
    db: AsyncSession, username: str, password: str, *, address: str, throttle: Throttle, known_device: bool = False,
) -> StaffUser | None:
    """The staff user for these credentials, or None (the failure is recorded: commit it).

    Failures count per account and address, so nobody can lock a colleague out from elsewhere:
    the right password from an address that did nothing wrong gets in. TooManyRequests (with
    the seconds until the next try) once this address failed too often, or while the account
    waits out its growing delay; a device it logged in on before (`known_device`) never waits
    for that delay, so the clerk at their own desk is never locked out.
    """
    now = utcnow()
    since = now - dt.timedelta(seconds=throttle.window_s)
    from_here = LoginFailure.at >= since, LoginFailure.address == address
    for which, limit in (((LoginFailure.username == username,), throttle.per_account), ((), throttle.per_address)):
        failures = list(await db.scalars(
            select(LoginFailure.at).where(*from_here, *which).order_by(LoginFailure.at.desc()).limit(limit)))
        if len(failures) >= limit:  # free again when the oldest of the last `limit` leaves the window
            wait = failures[-1] + dt.timedelta(seconds=throttle.window_s) - now
            raise TooManyRequests("too many failed logins; try again in {minutes} minutes",
                                  retry_after_s=max(1, int(wait.total_seconds()) + 1),
                                  minutes=max(1, -(-int(wait.total_seconds()) // 60)))
    if not known_device:
        anywhere = await account_failures(db, username, since)
        delay = guessing_delay_s(anywhere.count, throttle)
        if delay and anywhere.last is not None and now < anywhere.last + dt.timedelta(seconds=delay):
            wait_s = (anywhere.last + dt.timedelta(seconds=delay) - now).total_seconds()
            raise TooManyRequests("this account had many failed logins; try again in {seconds} seconds",
                                  retry_after_s=max(1, int(wait_s) + 1), seconds=max(1, int(wait_s) + 1))
    user = await db.scalar(select(StaffUser).where(StaffUser.username == username))
    # Verify against a dummy hash for unknown users too, so timing does not reveal them.
    ok = verify_password(user.password_hash if user else _dummy_hash(), password)
    if user is None or not ok or not user.active:
        db.add(LoginFailure(username=username, address=address))
        return None
    await db.execute(delete(LoginFailure).where(LoginFailure.username == username, LoginFailure.address == address))
    return user


async def start_session(
    db: AsyncSession, *, lifetime_s: int, staff_id: int | None = None, expert_id: int | None = None
) -> str:
    """Record a new login; returns its id for the cookie."""
    session_id = secrets.token_urlsafe(32)
    db.add(LoginSession(id=session_id, staff_id=staff_id, expert_id=expert_id,
                        expires_at=utcnow() + dt.timedelta(seconds=lifetime_s)))
    await db.flush()
    return session_id


async def session_is_live(db: AsyncSession, session_id: str) -> bool:
    """Whether the login is neither ended nor expired, and its staff account still active."""
    row = await db.execute(
        select(LoginSession.revoked_at, LoginSession.expires_at, StaffUser.active)
        .outerjoin(StaffUser, StaffUser.id == LoginSession.staff_id).where(LoginSession.id == session_id)
    )
    found = row.first()
    if found is None:
        return False
    revoked_at, expires_at, active = found
    return revoked_at is None and expires_at > utcnow() and active is not False


async def end_session(db: AsyncSession, session_id: str) -> None:
    """End one login (logging out)."""
    await db.execute(update(LoginSession).where(LoginSession.id == session_id, LoginSession.revoked_at.is_(None))
                     .values(revoked_at=utcnow()))


async def end_staff_sessions(db: AsyncSession, staff_id: int) -> None:
    """End every login of a staff member (new password, account disabled)."""
    await db.execute(update(LoginSession).where(LoginSession.staff_id == staff_id, LoginSession.revoked_at.is_(None))
                     .values(revoked_at=utcnow()))


async def set_password(db: AsyncSession, user: StaffUser, password: str) -> None:
    """Give a staff member a new password; every session they had ends."""
    user.password_hash = hash_password(password)
    await end_staff_sessions(db, user.id)


async def set_active(db: AsyncSession, user: StaffUser, active: bool) -> None:
    """Enable or disable a staff account; disabling ends its sessions. The last active
    administrator is never disabled (nobody could then manage the accounts); the administrators'
    rows are locked, so that two admins disabling each other at once cannot both succeed."""
    if not active and user.active and user.role == "admin":
        admins = (await db.scalars(select(StaffUser.id).where(StaffUser.role == "admin", StaffUser.active.is_(True))
                                   .with_for_update())).all()
        if set(admins) <= {user.id}:
            raise Conflict("'{username}' is the last active administrator and cannot be disabled",
                           username=user.username, field="active")
    user.active = active
    if not active:
        await end_staff_sessions(db, user.id)


async def spend_token(db: AsyncSession, token_id: str) -> None:
    """Mark a single-use token as used; Unauthorized if it was used before."""
    if await db.get(UsedToken, token_id) is not None:
        raise Unauthorized("this link has already been used")
    db.add(UsedToken(token_id=token_id))
    await db.flush()


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash("not a real password")
