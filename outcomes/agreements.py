"""Agreement templates: the starting terms of an agreement for each dispute type.

Every type has a built-in text; the office may replace it with its own (and go back to the
built-in one). A draft fills the placeholders {申请人} {被申请人} {纠纷名称} {地点} {日期} from
the session's dispute; any other text in braces stays as it is, for staff to complete.
"""
from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from disputes.models import Dispute
from foundation.database import iso_utc
from foundation.errors import Invalid, NotFound
from foundation.vocabulary import DisputeType
from outcomes.models import AgreementTemplate
from scheduling.models import MediationSession

PLACEHOLDER = re.compile(r"\{(申请人|被申请人|纠纷名称|地点|日期)\}")
# A blank for staff to fill: text in full-width brackets in a template, or anything in braces.
BRACES = re.compile(r"\{[^{}]*\}")
BLANK = re.compile(r"（[^（）]*）|\{[^{}]*\}")
NO_PLACE = "（地点）"  # a draft's place where the dispute has none
_CLOSING = "{n}、本协议履行完毕后，双方就此纠纷再无其他争议，任何一方不得再以此事由向对方主张权利。"
BUILT_IN: dict[str, str] = {
    DisputeType.NEIGHBOUR: "一、{被申请人}于{日期}起十日内完成（具体整改事项），{申请人}予以配合。\n"
                           "二、双方今后本着互谅互让、团结和睦的原则相处，遇事协商解决，不得采取过激行为。\n",
    DisputeType.FAMILY: "一、双方本着尊重、关爱的原则共同生活，互不打骂、互不干涉正当往来。\n"
                        "二、（赡养、抚养或财产事项）由（一方）于（期限）前履行。\n",
    DisputeType.LABOUR: "一、{被申请人}于（日期）前一次性向{申请人}支付拖欠工资人民币（金额）元。\n"
                        "二、支付方式：（银行转账/现金），{申请人}收款后出具收条。\n",
    DisputeType.RENTAL: "一、{申请人}与{被申请人}于（日期）前办理退租交接，{被申请人}退还押金人民币（金额）元。\n"
                        "二、房屋及设施损坏部分按（约定方式）处理。\n",
    DisputeType.LAND: "一、双方确认以（界址、参照物）为界，{地点}的土地使用按此界线执行。\n"
                      "二、界线两侧的作物、设施由各自负责处理，于（日期）前完成。\n",
    DisputeType.CONSUMER: "一、{被申请人}于（日期）前为{申请人}办理（退货/换货/维修），并赔偿人民币（金额）元。\n",
    DisputeType.TRAFFIC: "一、{被申请人}一次性赔偿{申请人}医疗费、误工费、财产损失等共计人民币（金额）元，于（日期）前付清。\n"
                         "二、赔偿款付清后，{申请人}不再就本次事故向{被申请人}主张其他赔偿。\n",
    DisputeType.ANIMALS: "一、{被申请人}于十日内为所养宠物办理登记并接种疫苗，出行时拴绳牵引、及时清理粪便。\n"
                         "二、{被申请人}赔偿{申请人}医疗等费用人民币（金额）元，于（日期）前付清。\n",
    DisputeType.PROPERTY: "一、{被申请人}于（日期）前完成（维修、整改事项），并向业主公示。\n"
                          "二、{申请人}于整改完成后（期限）内缴纳物业费人民币（金额）元。\n",
    DisputeType.OTHER: "一、（双方达成的具体事项、金额和期限）。\n",
}


def _with_closing(body: str) -> str:
    count = body.count("\n") + 1
    numerals = "一二三四五六七八九十"
    return body + _CLOSING.format(n=numerals[min(count, 10) - 1])


def _check_type(dispute_type: str) -> str:
    if dispute_type not in BUILT_IN:
        raise NotFound("no dispute type '{dispute_type}'", dispute_type=dispute_type)
    return dispute_type


async def list_templates(db: AsyncSession, office_id: int | None) -> list[dict[str, Any]]:
    """Every dispute type's template: the office's own text, or the built-in one."""
    own = {t.dispute_type: t for t in await db.scalars(select(AgreementTemplate).where(AgreementTemplate.office_id == office_id))}
    return [
        {"dispute_type": kind, "body": own[kind].body if kind in own else _with_closing(text),
         "custom": kind in own, "updated_at": iso_utc(own[kind].updated_at) if kind in own else None}
        for kind, text in BUILT_IN.items()
    ]


async def _own(db: AsyncSession, office_id: int | None, dispute_type: str) -> AgreementTemplate | None:
    return await db.scalar(select(AgreementTemplate).where(
        AgreementTemplate.office_id == office_id, AgreementTemplate.dispute_type == _check_type(dispute_type)))


async def template_for(db: AsyncSession, office_id: int | None, dispute_type: str) -> str:
    """The template text an office uses for a dispute type."""
    own = await _own(db, office_id, dispute_type)
    return own.body if own is not None else _with_closing(BUILT_IN[dispute_type])


async def save(db: AsyncSession, office_id: int, dispute_type: str, body: str) -> dict[str, Any]:
    """Replace a type's template with the office's own text."""
    if not body.strip():
        raise Invalid("the template is empty", field="body")
    own = await _own(db, office_id, dispute_type)
    if own is None:
        db.add(AgreementTemplate(office_id=office_id, dispute_type=dispute_type, body=body))
    else:
        own.body = body
    await db.flush()
    return next(t for t in await list_templates(db, office_id) if t["dispute_type"] == dispute_type)


async def reset(db: AsyncSession, office_id: int, dispute_type: str) -> dict[str, Any]:
    """Go back to the built-in template."""
    own = await _own(db, office_id, dispute_type)
    if own is not None:
        await db.delete(own)
        await db.flush()
    return next(t for t in await list_templates(db, office_id) if t["dispute_type"] == dispute_type)


async def blanks_left(db: AsyncSession, office_id: int | None, dispute_type: str, terms: str) -> list[str]:
    """The blanks of the type's template (its （…） and {…}) still in these terms, and any {…} in them."""
    template = PLACEHOLDER.sub("", await template_for(db, office_id, dispute_type))
    blanks = [*BLANK.findall(template), NO_PLACE]
    return list(dict.fromkeys([blank for blank in blanks if blank in terms] + BRACES.findall(terms)))


async def draft(db: AsyncSession, session_id: int, timezone: str) -> dict[str, Any]:
    """The template of a session's dispute type with the dispute's names and place filled in."""
    session = await db.get(MediationSession, session_id)
    if session is None:
        raise NotFound("no session with id {session_id}", session_id=session_id)
    dispute = await db.get(Dispute, session.dispute_id)
    assert dispute is not None
    sides: dict[str, list[str]] = {"applicant": [], "respondent": []}
    for party in dispute.parties:
        sides.setdefault(party.side, []).append(party.name)
    values = {
        "申请人": "、".join(sides["applicant"]) or "申请人", "被申请人": "、".join(sides["respondent"]) or "被申请人",
        "纠纷名称": dispute.title, "地点": dispute.place or NO_PLACE,
        "日期": session.start.astimezone(ZoneInfo(timezone)).strftime("%Y年%-m月%-d日"),
    }
    text = await template_for(db, dispute.office_id, dispute.dispute_type)
    return {"dispute_type": dispute.dispute_type, "terms": PLACEHOLDER.sub(lambda m: values[m.group(1)], text)}

