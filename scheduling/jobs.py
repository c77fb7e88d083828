"""The sessions' jobs: reminders before a session, opening and closing its room.

They run on the persistent scheduler (`scheduling/scheduler.py`), once each across nodes and
crashes; `Jobs` is that scheduler with the sessions' jobs added, moved and removed as sessions
are booked, moved and cancelled.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from disputes.models import Dispute
from foundation.database import utcnow
from scheduling import notify
from scheduling.models import ACTIVE_STATES, MediationSession

# Jobs stored before the scheduler had a module of its own name `scheduling.jobs:run_job`.
from scheduling.scheduler import Scheduler, job_context, run_job  # noqa: F401


def reminder_kind(offset_s: int) -> str:
    """Which reminder text an offset uses."""
    return "reminder_24h" if offset_s >= 6 * 3600 else "reminder_15m"


class Jobs(Scheduler):
    """The scheduler of one process with the sessions' jobs."""

    async def resync(self) -> None:
        """Make sure every future active session has its jobs (after a crash between commit and
        add, or a database outage that kept them from the store)."""
        await super().resync()
        async with self.context.sessions() as db:
            rows = (await db.execute(
                select(MediationSession.id, MediationSession.start, MediationSession.end)
                .where(MediationSession.status.in_(ACTIVE_STATES), MediationSession.end > utcnow())
            )).all()
        for session_id, start, end in rows:
            self.schedule_session(session_id, start, end)

    def schedule_session(self, session_id: int, start: dt.datetime, end: dt.datetime) -> None:
        """Add or move a session's reminders and room jobs (past times are skipped). With the
        database out of reach this says so once and leaves them to the repair pass: the
        booking that asked has committed, and its answer must not be an error."""
        with self._or_later(f"storing the jobs of session {session_id}"):
            self._schedule_session(session_id, start, end)

    def _schedule_session(self, session_id: int, start: dt.datetime, end: dt.datetime) -> None:
        now = utcnow()
        plan: list[tuple[str, Any, dt.datetime, tuple[Any, ...], int]] = [
            (f"session-{session_id}-remind-{offset}", remind, start - dt.timedelta(seconds=offset),
             (session_id, offset), offset)
            for offset in self.settings.reminder_offsets_s
        ]
        plan += [
            (f"session-{session_id}-open", open_room, start - dt.timedelta(seconds=self.settings.room_open_before_s),
             (session_id,), 24 * 3600),
            (f"session-{session_id}-close", close_room, end + dt.timedelta(seconds=self.settings.room_close_after_s),
             (session_id,), 7 * 24 * 3600),
        ]
        with self._store.together():
            for job_id, func, run_at, args, grace in plan:
                if run_at > now:
                    self._add(job_id, func, run_at, args, grace)

    def remove_session(self, session_id: int) -> None:
        """Remove a cancelled session's jobs (left to run, and do nothing, if the database is
        out of reach: each job checks its session)."""
        with self._or_later(f"removing the jobs of session {session_id}"):
            self._remove_session(session_id)

    def _remove_session(self, session_id: int) -> None:
        for job in self.scheduler.get_jobs():
            if job.id.startswith(f"session-{session_id}-"):
                try:
                    job.remove()
                except JobLookupError:
                    pass


async def remind(db: AsyncSession, session_id: int, offset_s: int) -> None:
    """Queue the reminder for every participant."""
    context = job_context()
    session = await db.get(MediationSession, session_id)
    if session is None or session.status not in ACTIVE_STATES:
        return
    dispute = await db.get(Dispute, session.dispute_id)
    await notify.queue_session_messages(
        db, session, reminder_kind(offset_s), tag=f"reminder-{offset_s}",
        dispute_title=dispute.title if dispute else "",
        link_for=lambda p: context.link_for(session, p), settings=context.settings,
    )


async def open_room(db: AsyncSession, session_id: int) -> None:
    """Mark the room open (participants may join from now on)."""
    session = await db.get(MediationSession, session_id)
    if session is not None and session.room_opened_at is None:
        session.room_opened_at = utcnow()


async def close_room(db: AsyncSession, session_id: int) -> None:
    """Mark the room closed at the end plus the grace period."""
    session = await db.get(MediationSession, session_id)
    if session is not None and session.room_closed_at is None:
        session.room_closed_at = utcnow()
