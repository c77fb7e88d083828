"""Staff accounts and logins as stored: users, login sessions, failed logins, spent tokens."""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Boolean, ColumnElement, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from foundation.database import Base, UTCDateTime, utcnow

# staff: a mediator or clerk (调解员), their office's cases | admin: an office admin, also the
# office's accounts, templates and settings | supervisor (督导): looks at every office below their
# level, changes nothing | sysadmin: offices, levels and accounts everywhere, looks at all cases.
ROLES = ("staff", "admin", "supervisor", "sysadmin")


class StaffUser(Base):
    """An office staff member who logs in with a password."""

    __tablename__ = "staff_users"
    # A supervisor, who may only look at cases, still changes their own password; who may manage
    # which accounts is decided by role in server/api/staff.py.
    writable_read_only = True

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(80), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="staff")  # one of ROLES
    # An office for a clerk or an office admin; a level above offices for a supervisor.
    office_id: Mapped[int | None] = mapped_column(ForeignKey("offices.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A disabled account cannot log in, and its open sessions end.
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.office_id.in_(offices)


class LoginSession(Base):
    """One login (a staff member's or an expert's). The signed cookie names it; a request counts
    as logged in only while this row lives, so logging out, a new password or a disabled
    account ends the session on the server, whatever copies of the cookie remain."""

    __tablename__ = "login_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    expert_id: Mapped[int | None] = mapped_column(ForeignKey("experts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LoginFailure(Base):
    """One failed login and the address it came from, kept for the throttle (in the database so
    every instance sees it)."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True, default="")
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class UsedToken(Base):
    """A single-use token (magic link) that has been spent."""

    __tablename__ = "used_tokens"

    token_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    used_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
