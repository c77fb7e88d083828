"""What the signed documents say: the session's record (调解笔录), the agreement (人民调解协议书)
and the joint application for judicial confirmation (司法确认申请书), each as one plain text.

The text is the document: its SHA-256 is what people sign (outcomes/signing.py), and the page,
the phone and the PDF all show this same text. It is built from the case as it is now, so that
any change to what a document says (the terms, the record, a party's name) changes the hash.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from disputes.models import Dispute, Evidence
from foundation.database import iso_utc, utcnow
from foundation.errors import Conflict, Forbidden
from foundation.vocabulary import label
from outcomes.models import OfficeSigning, Outcome, SessionRecord
from scheduling.models import MediationSession
from scheduling.notify import panel_line
from scheduling.room_record import RoomEvent

MAX_RECORD_CHARS = 50_000
JUDICIAL_DAYS = 30  # 人民调解法 第三十三条: within 30 days of the agreement taking effect
DOCUMENT_NAMES = {"resident_id": "居民身份证", "passport": "护照", "hk_macau_taiwan": "港澳台居民证件", "other": "其他证件"}


@dataclasses.dataclass(frozen=True)
class Context:
    """What every document of a case draws on."""

    session: MediationSession
    dispute: Dispute
    outcome: Outcome
    office_name: str
    timezone: str
    court: str = ""

    def local(self, at: dt.datetime, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return at.astimezone(ZoneInfo(self.timezone)).strftime(fmt)

    def names(self, side: str) -> str:
        return "、".join(p.name for p in self.dispute.parties if p.side == side) or label(side)


async def context(db: AsyncSession, outcome: Outcome, office_name: str, timezone: str) -> Context:
    session = await db.get(MediationSession, outcome.session_id)
    dispute = await db.get(Dispute, outcome.dispute_id)
    assert session is not None and dispute is not None
    office = await db.get(OfficeSigning, session.office_id) if session.office_id is not None else None
    return Context(session, dispute, outcome, office_name, timezone, office.court if office else "")


# ---- the record -------------------------------------------------------------------------------

def _who(names: dict[int, str], peer_id: Any) -> str:
    if isinstance(peer_id, str) and peer_id.startswith("p") and peer_id[1:].isdigit():
        return names.get(int(peer_id[1:]), "一名参会人")
    return "一名参会人"


def _entry(event: RoomEvent, names: dict[int, str]) -> str | None:
    """One room event as a line of the record (None: not part of it)."""
    who = names.get(event.participant_id or 0, "一名参会人")
    data = event.data or {}
    by = _who(names, data.get("by"))
    match event.kind:
        case "join":
            return f"{who} 进入调解室"
        case "leave":
            return f"{who} 离开调解室"
        case "admit":
            return f"{by} 准许 {who} 进入调解室"
        case "remove":
            return f"{by} 请 {who} 离开调解室"
        case "caucus_start":
            return f"{by} 开始单独沟通（背靠背），参加：" + "、".join(_who(names, p) for p in data.get("peer_ids", []))
        case "caucus_end":
            return f"{by} 结束单独沟通，回到全体会谈"
        case "consent":
            return f"{who} {'同意' if data.get('agree') else '拒绝'}录音录像"
        case "recording_started":
            return "开始录音录像"
        case "end":
            return f"{who} 结束调解"
    return None


async def record_entries(db: AsyncSession, session: MediationSession, timezone: str,
                         until: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The room's dated entries (joins, leaves, admissions, caucus, consent, evidence shown),
    up to `until` (the outcome: what came after is not part of the session)."""
    names = {p.id: p.display_name for p in session.participants}
    events = select(RoomEvent).where(RoomEvent.session_id == session.id).order_by(RoomEvent.id)
    evidence = select(Evidence).where(Evidence.dispute_id == session.dispute_id,
                                      Evidence.uploaded_by_participant.in_(list(names)))
    if until is not None:
        events, evidence = events.where(RoomEvent.at <= until), evidence.where(Evidence.created_at <= until)
    rows: list[tuple[dt.datetime, str]] = []
    for event in await db.scalars(events):
        if (line := _entry(event, names)) is not None:
            rows.append((event.at, line))
    for item in await db.scalars(evidence.where(Evidence.created_at >= session.start - dt.timedelta(hours=1))):
        rows.append((item.created_at, f"{names.get(item.uploaded_by_participant or 0, '一名参会人')} 出示证据：{item.filename}"))
    zone = ZoneInfo(timezone)
    return [{"at": iso_utc(at), "local": at.astimezone(zone).strftime("%H:%M:%S"), "text": line}
            for at, line in sorted(rows, key=lambda row: row[0])]


async def record_of(db: AsyncSession, session_id: int) -> SessionRecord | None:
    return await db.scalar(select(SessionRecord).where(SessionRecord.session_id == session_id))


async def record_view(db: AsyncSession, session: MediationSession, timezone: str) -> dict[str, Any]:
    """The record as the room's pane and the session page show it."""
    row = await record_of(db, session.id)
    outcome_at = await db.scalar(select(Outcome.recorded_at).where(Outcome.session_id == session.id))
    return {"text": row.text if row else "", "revision": row.revision if row else 0,
            "updated_by": row.updated_by if row else "", "updated_at": iso_utc(row.updated_at) if row else None,
            "entries": await record_entries(db, session, timezone, outcome_at)}


async def save_record(db: AsyncSession, session: MediationSession, text: str, revision: int, by: str) -> dict[str, Any]:
    """Save the host's text of the record; `revision` is the one the writer started from, so
    that two writers (the host in the room, a clerk on the session page) never overwrite each
    other unseen: the second is told to reload."""
    if session.status == "cancelled":
        raise Forbidden("a cancelled session has no record")
    if len(text) > MAX_RECORD_CHARS:
        raise Conflict("the record is longer than {n} characters", n=MAX_RECORD_CHARS)
    row = await record_of(db, session.id)
    if row is None:
        row = SessionRecord(session_id=session.id, text="", revision=0)
        db.add(row)
    if row.revision != revision:
        raise Conflict("someone else changed the record: reload it and make your change again")
    if row.text != text:
        row.text, row.revision, row.updated_by, row.updated_at = text, row.revision + 1, by[:80], utcnow()
    await db.flush()
    return {"revision": row.revision, "updated_at": iso_utc(row.updated_at), "updated_by": row.updated_by}


# ---- the documents ----------------------------------------------------------------------------

def _parties(ctx: Context) -> list[str]:
    return [f"{label(p.side)}：{p.name}" + (f"，联系电话 {p.phone}" if p.phone else "") for p in ctx.dispute.parties]


async def agreement_text(db: AsyncSession, ctx: Context) -> str:
    """The agreement with the session's record: the text the parties and the mediator sign."""
    session, dispute, outcome = ctx.session, ctx.dispute, ctx.outcome
    record = await record_of(db, session.id)
    entries = await record_entries(db, session, ctx.timezone, outcome.recorded_at)
    lines = [
        "人民调解协议书",
        f"编号：{ctx.office_name}〔{ctx.local(outcome.recorded_at, '%Y')}〕第 {session.id} 号",
        "", "一、当事人", *_parties(ctx),
        "", "二、纠纷主要事实、争议事项", f"{dispute.title}。{dispute.cause}{dispute.development}".strip(),
        "", "三、经调解，双方当事人自愿达成如下协议", outcome.terms.strip(),
        "", "四、参加调解的专家", panel_line(session) or "无",
        "", f"调解时间：{ctx.local(session.start)}　调解组织：{ctx.office_name}",
        "", "附：调解笔录",
        *[f"{ctx.local(dt.datetime.fromisoformat(e['at']), '%Y-%m-%d %H:%M:%S')} {e['text']}" for e in entries],
        *(["", record.text.strip()] if record is not None and record.text.strip() else []),
    ]
    return "\n".join(lines) + "\n"


def application_text(ctx: Context, agreement_effective: dt.datetime) -> str:
    """The joint application for judicial confirmation (人民调解法 第三十三条)."""
    if not ctx.court:
        raise Conflict("set the basic people's court on the office settings page first")
    lines = [
        "司法确认申请书",
        "", "申请人", *_parties(ctx),
        "", "请求事项",
        f"请求人民法院确认申请人于{ctx.local(agreement_effective, '%Y年%-m月%-d日')}经{ctx.office_name}主持调解达成的"
        f"人民调解协议（{ctx.office_name}〔{ctx.local(ctx.outcome.recorded_at, '%Y')}〕第 {ctx.session.id} 号）有效。",
        "", "事实与理由",
        f"申请人因{ctx.dispute.title}发生纠纷，经{ctx.office_name}调解，于{ctx.local(agreement_effective, '%Y年%-m月%-d日')}"
        "自愿达成调解协议。协议内容如下：", ctx.outcome.terms.strip(),
        "申请人出于解决纠纷的目的自愿达成协议，没有恶意串通、规避法律的行为；如因虚假调解给他人造成损失，"
        "愿意承担相应的民事责任和其他法律责任。",
        "", f"此致\n{ctx.court}",
        "", "附：人民调解协议书、调解笔录、证据清单",
    ]
    return "\n".join(lines) + "\n"


def judicial_deadline(effective: dt.datetime) -> dt.datetime:
    """The last moment to apply for judicial confirmation: 30 days after the agreement took effect."""
    return effective + dt.timedelta(days=JUDICIAL_DAYS)
