"""The outcomes' scheduled jobs: a reminder when a follow-up visit (回访) falls due, one 7 days
before the deadline to apply for judicial confirmation (司法确认), and the weekly review (每周研判). They run on the scheduler of `scheduling/scheduler.py`, which knows
nothing of outcomes: the app installs them (`install`), routes schedule follow-ups here."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from disputes.models import Dispute
from foundation.database import utcnow
from outcomes import documents, review
from outcomes.models import FollowUp, Outcome, SignDocument
from scheduling import outbox
from scheduling.models import MediationSession
from scheduling.scheduler import Scheduler, job_context

FOLLOW_UP_GRACE_S = 7 * 24 * 3600
REMIND_BEFORE = dt.timedelta(days=7)


async def install(jobs: Scheduler) -> None:
    """Add the weekly review, and a job for every pending follow-up and every sealed agreement's
    judicial deadline still ahead (after a crash between a commit and its job, or a job store
    that lost one)."""
    settings = jobs.settings
    jobs.weekly("weekly-review", weekly_review, settings.review_day, settings.review_hour, grace_s=24 * 3600)
    async with jobs.context.sessions() as db:
        pending = (await db.execute(select(FollowUp.id, FollowUp.due_at).where(FollowUp.status == "pending"))).all()
        sealed = (await db.execute(select(SignDocument.outcome_id, SignDocument.sealed_at).where(
            SignDocument.kind == "agreement", SignDocument.sealed_at.is_not(None)))).all()
    for follow_up_id, due_at in pending:
        schedule_follow_up(jobs, follow_up_id, due_at)
    for outcome_id, sealed_at in sealed:
        if sealed_at is not None and documents.judicial_deadline(sealed_at) > utcnow():
            schedule_judicial_reminder(jobs, outcome_id, documents.judicial_deadline(sealed_at))


def schedule_follow_up(jobs: Scheduler, follow_up_id: int, due_at: dt.datetime) -> None:
    """Remind the office of a follow-up visit when it falls due."""
    jobs.once(f"follow-up-{follow_up_id}", follow_up_due, due_at, (follow_up_id,), FOLLOW_UP_GRACE_S)


def schedule_judicial_reminder(jobs: Scheduler, outcome_id: int, deadline: dt.datetime) -> None:
    """Remind staff and the parties 7 days before the deadline for judicial confirmation (one
    job id per agreement, so nodes that both schedule it run it once)."""
    jobs.once(f"judicial-{outcome_id}", judicial_reminder, deadline - REMIND_BEFORE, (outcome_id,), 3 * 24 * 3600)


async def judicial_reminder(db: AsyncSession, outcome_id: int) -> None:
    """Tell the office and each party that the 30 days to apply for judicial confirmation end in
    7 days; nothing once the application was signed and issued, or the agreement is no longer sealed.
    Each message has its key, so a second run (another node, a retry) sends nothing more."""
    settings = job_context().settings
    outcome = await db.get(Outcome, outcome_id)
    agreement = await db.scalar(select(SignDocument).where(SignDocument.outcome_id == outcome_id, SignDocument.kind == "agreement"))
    if outcome is None or agreement is None or agreement.sealed_at is None:
        return
    application = await db.scalar(select(SignDocument).where(SignDocument.outcome_id == outcome_id, SignDocument.kind == "application"))
    if application is not None and application.sealed_at is not None:
        return
    dispute = await db.get(Dispute, outcome.dispute_id)
    session = await db.get(MediationSession, outcome.session_id)
    assert dispute is not None and session is not None
    deadline = documents.judicial_deadline(agreement.sealed_at).astimezone(ZoneInfo(settings.timezone)).strftime("%Y年%-m月%-d日")
    text = (f"“{dispute.title}”的人民调解协议申请司法确认的期限（协议生效后三十日内，人民调解法第三十三条）"
            f"将于{deadline}届满。需要申请的，请双方当事人尽快在“待签材料”中签署司法确认申请书，或与{settings.office_name}联系。\n")
    messages: list[dict[str, object]] = [dict(
        key=f"judicial:{outcome_id}:office", kind="judicial_deadline", channel="email", session_id=session.id,
        recipient=settings.office_email or settings.smtp_from, subject=f"【司法确认期限提醒】{dispute.title}", body=text)]
    for party in session.participants:
        if party.kind != "party" or party.revoked_at is not None:
            continue
        for channel, recipient in (("sms", party.phone), ("email", party.email)):
            if recipient:
                messages.append(dict(key=f"judicial:{outcome_id}:{party.id}:{channel}", kind="judicial_deadline",
                                     channel=channel, session_id=session.id, recipient=recipient,
                                     subject=f"【司法确认期限提醒】{dispute.title}", body=f"{party.display_name}，您好：\n{text}",
                                     params={"name": party.display_name, "title": dispute.title, "office": settings.office_name}
                                     if channel == "sms" else None))
    await outbox.queue(db, messages)


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
