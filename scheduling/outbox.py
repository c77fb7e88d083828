"""The notification outbox: messages are queued in the booking's own transaction, then delivered.

A message's key (session, participant, kind, sequence) is unique: queuing the same message twice,
as a job that runs again after a restart would, adds nothing. Delivery claims a row before
sending, so two server processes never send the same row.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import JSON, ColumnElement, ForeignKey, Integer, LargeBinary, String, Table, Text, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from foundation import mail
from foundation.aio import cancel_and_wait, run_to_end
from foundation.config import Settings
from foundation.database import Base, UTCDateTime, iso_utc, utcnow
from foundation.errors import Conflict, NotFound
from foundation.outage import Outage
from scheduling.models import MediationSession
from scheduling.sms import SmsGateway

logger = logging.getLogger(__name__)
CLAIM_TIMEOUT_S = 10 * 60
CLAIM_BATCH = 50  # messages claimed at a time
# last_error of a message that was kept but not sent: the pages show these in the reader's language.
SMS_NOT_SENT = "no SMS gateway is configured: recorded in the outbox, nothing was sent"
MAIL_LOGGED = "no SMTP server is configured (TIAOJIE_SMTP_HOST): the mail was written to the log, not sent"


class OutboxMessage(Base):
    """One message to one recipient on one channel."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("mediation_sessions.id"), index=True, nullable=True)
    # The office it is sent for (its session's, or the office an alert is about).
    office_id: Mapped[int | None] = mapped_column(index=True, nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))  # email | sms
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text)
    calendar: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    calendar_method: Mapped[str] = mapped_column(String(16), default="")
    # An SMS's template variables (scheduling/sms.py VARIABLES); the service's id once it took it.
    params: Mapped[dict[str, str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    receipt: Mapped[str] = mapped_column(String(100), default="")
    # pending | sending | sent | failed | recorded (SMS without a gateway)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When a process claimed it for sending: a claim older than CLAIM_TIMEOUT_S was abandoned
    # (the process died mid-send) and the message is pending again.
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @classmethod
    def in_offices(cls, offices: Sequence[int]) -> ColumnElement[bool]:
        return cls.office_id.in_(offices)


def message_to_dict(m: OutboxMessage) -> dict[str, Any]:
    """The view of an outbox row."""
    return {
        "id": m.id, "key": m.key, "session_id": m.session_id, "kind": m.kind, "channel": m.channel,
        "recipient": m.recipient, "subject": m.subject, "status": m.status, "attempts": m.attempts,
        "last_error": m.last_error, "created_at": iso_utc(m.created_at), "sent_at": iso_utc(m.sent_at),
        "has_calendar": m.calendar is not None, "reason": _reason(m), "receipt": m.receipt,
    }


def _reason(m: OutboxMessage) -> str:
    """Why a message was not sent, as a code the pages translate (the detail stays in last_error,
    for an SMS in Chinese from scheduling/sms.py)."""
    known = {"": "", SMS_NOT_SENT: "no_sms_gateway", MAIL_LOGGED: "no_smtp"}
    return known.get(m.last_error, "sms_failed" if m.channel == "sms" else "delivery_failed")


# What a queued message has unless it says otherwise (every row of one INSERT names the same columns).
_OPTIONAL = {"session_id": None, "office_id": None, "subject": "", "calendar": None, "calendar_method": "", "params": None}


async def queue(db: AsyncSession, messages: list[dict[str, Any]]) -> None:
    """Add messages (each the fields of a row), skipping any whose key exists already
    (idempotent, also under races); one statement for them all. A message about a session is
    its office's (foundation/scoping.py); any other names its `office_id`."""
    if not messages:
        return
    session_ids = {m["session_id"] for m in messages if m.get("session_id") is not None and m.get("office_id") is None}
    offices = dict((await db.execute(select(MediationSession.id, MediationSession.office_id)
                                     .where(MediationSession.id.in_(session_ids)))).all()) if session_ids else {}
    messages = [{**m, "office_id": offices[m["session_id"]]} if m.get("session_id") in offices else m for m in messages]
    dialect = db.bind.dialect.name if db.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = utcnow()
    # The table's insert, not the ORM's: one statement for every row (the ORM's takes one for
    # each set of columns left unset).
    table = cast(Table, OutboxMessage.__table__)
    await db.execute(insert(table).on_conflict_do_nothing(index_elements=["key"]),
                     [{**_OPTIONAL, "created_at": now, **message} for message in messages])


async def list_messages(db: AsyncSession, *, status: str | None = None, session_id: int | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Outbox rows, newest first."""
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if status:
        query = query.where(OutboxMessage.status == status)
    if session_id is not None:
        query = query.where(OutboxMessage.session_id == session_id)
    return [message_to_dict(m) for m in await db.scalars(query)]


async def backlog(db: AsyncSession) -> dict[str, Any]:
    """What waits to be sent (pending, or being sent) and what failed, and the age in seconds of
    the oldest waiting message (0 when none), for /metrics."""
    waiting = OutboxMessage.status.in_(("pending", "sending"))
    counts = dict((await db.execute(
        select(OutboxMessage.status, func.count()).where(or_(waiting, OutboxMessage.status == "failed"))
        .group_by(OutboxMessage.status))).all())
    oldest = await db.scalar(select(func.min(OutboxMessage.created_at)).where(waiting))
    return {"waiting": counts.get("pending", 0) + counts.get("sending", 0), "failed": counts.get("failed", 0),
            "oldest_waiting_s": (utcnow() - oldest).total_seconds() if oldest is not None else 0.0}


async def retry(db: AsyncSession, message_id: int) -> dict[str, Any]:
    """Put a failed message back in the queue."""
    message = await db.get(OutboxMessage, message_id)
    if message is None:
        raise NotFound("no outbox message {message_id}", message_id=message_id)
    if message.status != "failed":
        raise Conflict("only failed messages can be retried; this one is {status}", status=message.status)
    message.status = "pending"
    await db.flush()
    return message_to_dict(message)


def _due(now: dt.datetime) -> Any:
    """Pending messages, and claims abandoned by a process that stopped mid-send."""
    stale = now - dt.timedelta(seconds=CLAIM_TIMEOUT_S)
    return or_(OutboxMessage.status == "pending",
               and_(OutboxMessage.status == "sending", OutboxMessage.claimed_at < stale))


async def deliver_pending(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, sms: SmsGateway | None = None
) -> int:
    """Send every pending message once; returns how many were handled.

    Messages are claimed a batch at a time in one statement (a row another process claimed
    first is skipped); each one sent is marked in its own transaction as soon as it is sent, so
    that a crash never sends it twice; those only kept (no SMTP server, no SMS gateway) are
    marked together."""
    handled = 0
    while batch := await _claim(sessions, utcnow()):
        kept: list[dict[str, Any]] = []
        done = 0  # messages of the batch sent (and marked so) or kept
        try:
            for message in batch:
                status, error, receipt = await _send(message, settings, sms)
                result = {"id": message.id, "status": status, "last_error": error, "receipt": receipt,
                          "sent_at": utcnow() if status == "sent" else None}
                done += 1
                if status == "recorded":
                    kept.append(result)
                else:  # it went (or failed): marked so, even if the server stops meanwhile
                    await run_to_end(_mark(sessions, [result]))
        except asyncio.CancelledError:
            # Stopped mid-batch: what was kept is marked, and what was not sent is handed back,
            # so that the next run sends it (however often the stop cancels again meanwhile).
            await run_to_end(_hand_back(sessions, [m.id for m in batch[done:]], kept))
            raise
        await _mark(sessions, kept)
        handled += len(batch)
        if len(batch) < CLAIM_BATCH:
            break  # none were left (what is queued meanwhile kicks the deliverer again)
    return handled


async def _claim(sessions: async_sessionmaker[AsyncSession], now: dt.datetime) -> list[OutboxMessage]:
    """Claim the next due messages for this process (their rows as claimed)."""
    due = select(OutboxMessage.id).where(_due(now)).order_by(OutboxMessage.id).limit(CLAIM_BATCH)
    async with sessions() as db, db.begin():
        claimed = await db.scalars(
            update(OutboxMessage).where(OutboxMessage.id.in_(due), _due(now))
            .values(status="sending", attempts=OutboxMessage.attempts + 1, claimed_at=now)
            .returning(OutboxMessage), execution_options={"synchronize_session": False})
        return sorted(claimed, key=lambda m: m.id)


async def _mark(sessions: async_sessionmaker[AsyncSession], results: list[dict[str, Any]]) -> None:
    if results:
        async with sessions() as db, db.begin():
            await db.execute(update(OutboxMessage), results)


async def _hand_back(sessions: async_sessionmaker[AsyncSession], message_ids: list[int],
                     kept: list[dict[str, Any]]) -> None:
    async with sessions() as db, db.begin():
        await db.execute(update(OutboxMessage).where(OutboxMessage.id.in_(message_ids), OutboxMessage.status == "sending")
                         .values(status="pending", claimed_at=None))
        if kept:
            await db.execute(update(OutboxMessage), kept)


async def _send(message: OutboxMessage, settings: Settings, sms: SmsGateway | None) -> tuple[str, str, str]:
    """Send one message: its status, the error if any, and the service's id for it (SMS)."""
    if message.channel == "sms" and sms is None:
        return "recorded", SMS_NOT_SENT, ""
    if message.channel == "email" and not settings.smtp_host:
        logger.info("mail not sent (no SMTP server) to %s: %s\n%s", message.recipient, message.subject, message.body)
        return "recorded", MAIL_LOGGED, ""
    receipt = ""
    try:
        if message.channel == "sms":
            assert sms is not None
            receipt = await sms.send(message.recipient, message.kind, message.params or {})
        else:
            await mail.send(
                settings, message.recipient, message.subject, message.body,
                calendar=message.calendar, calendar_method=message.calendar_method or "REQUEST",
            )
    except (OSError, mail.SMTPError) as exc:
        logger.warning("sending outbox message %s to %s failed: %s", message.id, message.recipient, exc)
        return "failed", str(exc) or exc.__class__.__name__, ""
    return "sent", "", receipt


class Deliverer:
    """A background task that delivers the outbox when kicked, and every minute anyway."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], settings: Settings, *,
        sms: SmsGateway | None = None, interval_s: float = 60, outage: Outage | None = None,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._sms = sms
        self._interval_s = interval_s
        self._outage = outage or Outage()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start delivering, beginning with whatever a previous run left pending."""
        self._wake.set()
        self._task = asyncio.create_task(self._run(), name="outbox-deliverer")

    def kick(self) -> None:
        """Deliver soon (after a transaction that queued messages has committed)."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop the background task."""
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        while True:
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancel that arrives with the
            # wake-up (a job's kick as the server stops), and the stop then waits forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await deliver_pending(self._sessions, self._settings, self._sms)
                self._outage.answered()
            except Exception as exc:  # keep delivering later; one bad round must not end the task
                if not self._outage.failed(exc, "delivering the outbox"):
                    logger.exception("outbox delivery round failed")
