"""The outcomes' scheduled jobs: a reminder when a follow-up visit (回访) falls due, and the
weekly review (每周研判). They run on the scheduler of `scheduling/jobs.py`, which knows
nothing of outcomes: the app installs them (`install`), routes schedule follow-ups here."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from disputes.models import Dispute
from foundation.database import utcnow
from outcomes import review
from outcomes.models import FollowUp
from scheduling import outbox
from scheduling.jobs import Jobs, job_context

FOLLOW_UP_GRACE_S = 7 * 24 * 3600


async def install(jobs: Jobs) -> None:
    """Add the weekly review, and a job for every pending follow-up (after a crash between a
    commit and its job, or a job store that lost one)."""
    settings = jobs.settings
    jobs.weekly("weekly-review", weekly_review, settings.review_day, settings.review_hour, grace_s=24 * 3600)
    async with jobs.context.sessions() as db:
        pending = (await db.execute(select(FollowUp.id, FollowUp.due_at).where(FollowUp.status == "pending"))).all()
    for follow_up_id, due_at in pending:
        schedule_follow_up(jobs, follow_up_id, due_at)


def schedule_follow_up(jobs: Jobs, follow_up_id: int, due_at: dt.datetime) -> None:
    """Remind the office of a follow-up visit when it falls due."""
    jobs.once(f"follow-up-{follow_up_id}", follow_up_due, due_at, (follow_up_id,), FOLLOW_UP_GRACE_S)


async def follow_up_due(db: AsyncSession, follow_up_id: int) -> None:
    """Tell the office that a follow-up visit (回访) is due."""
    settings = job_context().settings
    follow_up = await db.get(FollowUp, follow_up_id)
    if follow_up is None or follow_up.status != "pending":
        return
    dispute = await db.get(Dispute, follow_up.dispute_id)
    title = dispute.title if dispute else ""
    await outbox.queue(db, [dict(
        key=f"follow-up:{follow_up_id}", kind="follow_up", channel="email", office_id=dispute.office_id if dispute else None,
        recipient=settings.office_email or settings.smtp_from,
        subject=f"【回访提醒】{title}",
        body=f"纠纷“{title}”已达成调解协议，现到回访时间，请社区民警回访并在系统中记录回访结果。\n",
    )])


async def weekly_review(db: AsyncSession) -> None:
    """Build, keep and e-mail the review of the week that just ended (每周研判)."""
    await review.publish(db, job_context().settings, utcnow())
