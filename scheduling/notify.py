"""What each participant is told, and when: invitations, changes, cancellations, reminders.

Messages are in Chinese, with the time in the recipient's time zone, the panel by role and the
recipient's personal join link; e-mails to invitees carry an ICS invitation.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import icalendar
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from experts.models import Expert
from foundation.config import Settings
from foundation.vocabulary import label
from scheduling import ics, outbox
from scheduling.models import HOLDING_STATES, MediationSession, Participant

SUBJECTS = {
    "invite": "【远程调解邀请】",
    "update": "【调解时间变更】",
    "cancel": "【调解已取消】",
    "reminder_24h": "【明日调解提醒】",
    "reminder_15m": "【调解即将开始】",
    "declined": "【专家婉拒邀请，请安排替补】",
    "agreement": "【调解协议待您确认】",
}
LEADS = {
    "invite": "诚邀您参加以下远程视频调解：",
    "update": "您参加的远程调解时间已变更，请以本通知为准：",
    "cancel": "您参加的远程调解已取消：",
    "reminder_24h": "提醒：您明天将参加以下远程调解。",
    "reminder_15m": "提醒：远程调解将于约15分钟后开始，请提前进入。",
}
WEEKDAYS = "一二三四五六日"


def when(start: dt.datetime, end: dt.datetime, timezone: str) -> str:
    """'2026年11月30日（周一）10:00–11:00（北京时间）' in the given zone."""
    tz = ZoneInfo(timezone)
    s, e = start.astimezone(tz), end.astimezone(tz)
    return f"{s.year}年{s.month}月{s.day}日（周{WEEKDAYS[s.weekday()]}）{s:%H:%M}–{e:%H:%M}（{label(timezone)}）"


def panel_line(session: MediationSession) -> str:
    """'法制民警 刘国荣；律师 王律师'."""
    return "；".join(
        f"{label(p.role)} {p.display_name}" for p in session.participants
        if p.kind == "expert" and p.status in HOLDING_STATES
    )


def _recipients(session: MediationSession, kind: str) -> list[Participant]:
    if kind == "cancel":
        return [p for p in session.participants if p.status not in ("replaced", "removed", "declined")]
    return [p for p in session.participants if p.status in ("invited", "accepted") and p.revoked_at is None]


async def queue_session_messages(
    db: AsyncSession, session: MediationSession, kind: str, *, dispute_title: str,
    link_for: Callable[[Participant], str], settings: Settings, only: Participant | None = None,
    tag: str | None = None,
) -> None:
    """Queue one message per participant and channel (e-mail and/or SMS) for a session event.

    `tag` names the event in the outbox key (default: the kind).
    """
    expert_ids = [p.expert_id for p in session.participants if p.expert_id is not None]
    zones = dict((await db.execute(select(Expert.id, Expert.timezone).where(Expert.id.in_(expert_ids)))).all())
    cancelled = kind == "cancel"
    calendar = None
    messages: list[dict[str, Any]] = []
    if kind in ("invite", "update", "cancel"):
        calendar = ics.calendar([_event(session, dispute_title, settings, cancelled)], "CANCEL" if cancelled else "REQUEST")
    for participant in [only] if only else _recipients(session, kind):
        timezone = zones.get(participant.expert_id, settings.timezone) if participant.expert_id else settings.timezone
        text = _body(session, participant, kind, dispute_title, timezone, link_for(participant), settings)
        subject = f"{SUBJECTS[kind]}{dispute_title} {when(session.start, session.end, timezone)}"
        base = f"{tag or kind}:{session.id}:{participant.id}:{session.sequence}"
        if participant.email:
            messages.append(dict(
                key=f"{base}:email", session_id=session.id, kind=kind, channel="email",
                recipient=participant.email, subject=subject, body=text,
                calendar=calendar, calendar_method="CANCEL" if cancelled else "REQUEST",
            ))
        if participant.phone:
            params = {"name": participant.display_name, "time": when(session.start, session.end, timezone),
                      "link": "" if cancelled else link_for(participant), "office": settings.office_name,
                      "title": dispute_title}
            messages.append(dict(
                key=f"{base}:sms", session_id=session.id, kind=kind, channel="sms",
                recipient=participant.phone, subject=subject, body=text, params=params,
            ))
    await outbox.queue(db, messages)


async def queue_decline_alert(
    db: AsyncSession, session: MediationSession, participant: Participant, *, dispute_title: str,
    replacements: list[str], settings: Settings,
) -> None:
    """Tell the office that an expert declined, with who could step in."""
    names = "、".join(replacements) or "暂无空闲的同类专家，请调整时间"
    body = (
        f"{label(participant.role)} {participant.display_name} 婉拒了以下调解邀请：\n"
        f"纠纷：{dispute_title}\n时间：{when(session.start, session.end, settings.timezone)}\n"
        f"可替补的专家：{names}\n请在工作台“替换专家”中确认。\n"
    )
    await outbox.queue(db, [dict(
        key=f"declined:{session.id}:{participant.id}:{session.sequence}", session_id=session.id,
        kind="declined", channel="email", recipient=settings.office_email or settings.smtp_from,
        subject=f"{SUBJECTS['declined']}{dispute_title}", body=body,
    )])


async def queue_agreement_messages(
    db: AsyncSession, session: MediationSession, *, dispute_title: str, terms: str,
    link_for: Callable[[Participant], str], settings: Settings, days: int,
) -> None:
    """Ask each party (and each expert, who may sign too) to read and sign the agreement from
    their own link (valid `days` days)."""
    messages: list[dict[str, Any]] = []
    for party in session.participants:
        if party.kind not in ("party", "expert") or party.status not in ("invited", "accepted") or party.revoked_at is not None:
            continue
        how = ("核对协议和调解笔录，收到短信验证码后用手指签名：" if party.kind == "party"
               else "如您愿意，可作为参与调解专家签名：")
        body = "\n".join([
            f"{party.display_name}，您好：", "",
            f"经远程调解，“{dispute_title}”已达成调解协议，协议内容如下：", "", terms, "",
            f"请在 {days} 天内用浏览器打开您的专属链接，进入“待签材料”，{how}",
            link_for(party), "此链接仅限本人使用，请勿转发。各方当事人和人民调解员签名、调解组织盖章后协议生效。", "",
            settings.office_name,
        ]) + "\n"
        subject = f"{SUBJECTS['agreement']}{dispute_title}"
        params = {"name": party.display_name, "link": link_for(party), "office": settings.office_name,
                  "title": dispute_title, "days": str(days)}
        for channel, recipient in (("email", party.email), ("sms", party.phone)):
            if recipient:
                messages.append(dict(
                    key=f"agreement:{session.id}:{party.id}:{channel}", session_id=session.id, kind="agreement",
                    channel=channel, recipient=recipient, subject=subject, body=body,
                    params=params if channel == "sms" else None,
                ))
    await outbox.queue(db, messages)


def _body(
    session: MediationSession, participant: Participant, kind: str, title: str, timezone: str,
    link: str, settings: Settings,
) -> str:
    place = "视频调解（远程参加）" if session.location_kind == "remote" else f"现场与视频结合：{session.location}"
    lines = [
        f"{participant.display_name}，您好：", "", LEADS[kind], "",
        f"纠纷：{title}",
        f"时间：{when(session.start, session.end, timezone)}",
        f"方式：{place}",
        f"调解专家：{panel_line(session)}",
        f"您的身份：{label(participant.role)}",
    ]
    if kind == "cancel":
        lines += [f"取消原因：{session.cancel_reason}"] if session.cancel_reason else []
    else:
        lines += ["", "请在开始前几分钟用浏览器打开您的专属链接（手机或电脑均可，无需安装软件）：", link,
                  "此链接仅限本人使用，请勿转发。"]
    lines += ["", settings.office_name]
    return "\n".join(lines) + "\n"


def _event(session: MediationSession, title: str, settings: Settings, cancelled: bool) -> icalendar.Event:
    return ics.session_event(
        uid=ics.session_uid(session.id, urlsplit(settings.base_url).hostname or "tiaojie"),
        sequence=session.sequence, start=session.start, end=session.end,
        summary=f"远程调解：{title}",
        description=f"调解专家：{panel_line(session)}\n请使用邀请邮件中的个人链接进入。",
        location="视频调解" if session.location_kind == "remote" else session.location,
        organizer=settings.smtp_from,
        attendees=[
            (p.email, p.display_name, label(p.role)) for p in session.participants
            if p.kind == "expert" and p.status in HOLDING_STATES and p.email
        ],
        cancelled=cancelled,
    )
