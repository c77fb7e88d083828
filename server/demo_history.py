"""Demo history: eight weeks of mediations already held, so that the follow-ups, the weekly
review and the statistics have something to show. Each case names its panel by index into
`server.demo.EXPERTS` and says what came out of it."""
from __future__ import annotations

import datetime as dt
import io
import math
from typing import Any
from zoneinfo import ZoneInfo

from PIL import Image, ImageDraw
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from disputes.models import Dispute, Party
from experts.models import Expert, ExpertOffice, Office
from outcomes import documents, review, signing
from outcomes.models import FollowUp, IdentityCheck, OfficeSigning, Outcome, Signature
from scheduling.models import MediationSession, Participant
from scheduling.room_record import RoomEvent

TZ = ZoneInfo("Asia/Shanghai")
SECOND_OFFICE = "朝阳警务室"
COURT = "益阳高新技术产业开发区人民法院"

# registered / session: days ago; panel: expert indexes; confirmed: parties who signed (by
# order); follow_ups: results of the visits so far (None: still to do); absent: who did not come.
CASES: list[dict[str, Any]] = [
    {"title": "楼上漏水引发邻里矛盾", "dispute_type": "neighbour", "risk_level": "medium", "registered": 40, "session": 35,
     "place": "金山社区5栋", "cause": "楼上卫生间防水层老化，楼下天花板多次渗水发霉。",
     "parties": [("周建华", "applicant"), ("吴美玲", "respondent")], "panel": [0, 4, 11],
     "kind": "agreement", "terms": "一、吴美玲于十日内请专业人员重做卫生间防水。\n二、吴美玲赔偿周建华天花板修复费用人民币1500元。",
     "confirmed": [0, 1], "follow_ups": ["kept", "kept"]},
    {"title": "电动车楼道充电纠纷", "dispute_type": "neighbour", "risk_level": "low", "registered": 30, "session": 26,
     "place": "金山社区8栋", "cause": "住户在楼道飞线充电，邻居担心火灾隐患。",
     "parties": [("邓小军", "applicant"), ("彭国平", "respondent")], "panel": [2, 8, 11],
     "kind": "agreement", "terms": "一、彭国平即日起停止楼道飞线充电，改到小区集中充电桩充电。",
     "confirmed": [0, 1], "follow_ups": ["kept", None]},
    {"title": "网购家电退货纠纷", "dispute_type": "consumer", "risk_level": "low", "registered": 25, "session": 21,
     "place": "高新区东部新区", "cause": "网购空调安装后漏水，商家拒绝退货。",
     "parties": [("汤丽", "applicant"), ("某电器商行", "respondent")], "panel": [3, 6, 16],
     "kind": "no_agreement", "summary": "商家坚持只修不退，双方分歧较大。",
     "referral_to": "hotline_12345", "referral_reason": "商家注册地在外地，转 12345 热线由市场监管部门处理。"},
    {"title": "电动车与行人相撞赔偿纠纷", "dispute_type": "traffic", "risk_level": "high", "registered": 22, "session": 18,
     "place": "龙岭大道与银城路口", "cause": "电动车闯红灯撞伤行人，医疗费用分担有争议。",
     "parties": [("蒋春花", "applicant"), ("肖伟", "respondent")], "panel": [3, 6, 19],
     "kind": "referred", "summary": "伤情鉴定结论双方均不认可。",
     "referral_to": "court", "referral_reason": "伤残等级与赔偿数额争议较大，建议向法院起诉。", "absent": ["expert:19"]},
    {"title": "子女赡养老人纠纷", "dispute_type": "family", "risk_level": "medium", "registered": 18, "session": 14,
     "place": "鸬鹚桥社区", "cause": "三名子女对老人生活费和看护分工意见不一。",
     "parties": [("胡德明", "applicant"), ("胡建国", "respondent")], "panel": [1, 5, 14],
     "kind": "agreement", "terms": "一、三名子女每月各向父亲支付生活费人民币600元。\n二、看护按月轮流，由社区网格员监督。",
     "confirmed": [0, 1], "follow_ups": ["relapsed"]},
    {"title": "工地夜间施工噪音扰民", "dispute_type": "neighbour", "risk_level": "medium", "registered": 15, "session": 10,
     "office": SECOND_OFFICE, "place": "朝阳街道康富路", "cause": "工地夜间浇筑混凝土，周边居民无法休息。",
     "parties": [("居民代表 陈芳", "applicant"), ("某建设公司项目部", "respondent")], "panel": [2, 9, 12],
     "kind": "agreement", "terms": "一、项目部晚上十点后停止产生噪音的作业。\n二、确需夜间施工的，提前三天张贴公告。",
     "confirmed": [0], "follow_ups": []},
    {"title": "临街商铺租金纠纷", "dispute_type": "rental", "risk_level": "medium", "registered": 12, "session": 8,
     "office": SECOND_OFFICE, "place": "朝阳街道桃花仑路", "cause": "疫情后租金减免约定不清，房东要求补交。",
     "parties": [("店主 刘芳", "applicant"), ("房东 谭志", "respondent")], "panel": [4, 18, 12],
     "kind": "adjourned", "summary": "双方需各自核对租金账目，约定下周再次调解。", "absent": ["party:1"]},
    {"title": "山林界址纠纷", "dispute_type": "land", "risk_level": "high", "registered": 10, "session": 5,
     "place": "谢林港镇清溪村", "cause": "林权证四至描述模糊，两户砍伐界址附近杉木引发争执。",
     "parties": [("罗光辉", "applicant"), ("罗正清", "respondent")], "panel": [2, 7, 13],
     "kind": "agreement", "terms": "一、双方以老石坎为界，石坎以东归罗光辉，以西归罗正清。\n二、已砍伐杉木按界线各自所有。",
     "confirmed": [0, 1], "follow_ups": []},
    {"title": "装修渗水损坏楼下地板", "dispute_type": "property", "risk_level": "low", "registered": 8, "session": 3,
     "office": SECOND_OFFICE, "place": "朝阳街道金桂园小区", "cause": "楼上装修水管爆裂，楼下木地板起拱。",
     "parties": [("龚丽萍", "applicant"), ("邹志文", "respondent")], "panel": [0, 4, 11],
     "kind": "agreement", "terms": "一、邹志文赔偿龚丽萍地板维修费用人民币4200元，于十五日内付清。",
     "confirmed": [], "follow_ups": [], "absent": ["expert:11"]},
]
STATUS_AFTER = {"agreement": "resolved", "no_agreement": "failed", "referred": "referred", "adjourned": "scheduled"}


def _at(today: dt.date, days_ago: int, hour: int) -> dt.datetime:
    return dt.datetime.combine(today - dt.timedelta(days=days_ago), dt.time(hour), TZ)


async def load_history(
    db: AsyncSession, today: dt.date, office: Office, experts: list[Expert], host_name: str,
    office_name: str, follow_up_days: tuple[int, ...] = (7, 30),
) -> None:
    """Add the second office, the past cases, their sessions, outcomes, signatures, follow-ups
    and room joins."""
    second = Office(name=SECOND_OFFICE, timezone="Asia/Shanghai", parent_id=office.parent_id)
    db.add(second)
    await db.flush()
    for unit in (office, second):
        db.add(OfficeSigning(office_id=unit.id, seal_png=seal_image(unit.name), seal_updated_at=_at(today, 60, 9),
                             court=COURT))
    for expert in experts[::2]:  # the pool is shared: every other expert serves both offices
        expert.served.append(ExpertOffice(office_id=second.id))
    offices = {office.name: office, SECOND_OFFICE: second}
    for n, case in enumerate(CASES):
        created = _at(today, case["registered"], 10)
        dispute = Dispute(
            office_id=offices[case.get("office", office.name)].id, title=case["title"],
            dispute_type=case["dispute_type"], risk_level=case["risk_level"], place=case["place"],
            cause=case["cause"], created_at=created, occurred_at=created - dt.timedelta(days=3),
            status=STATUS_AFTER[case["kind"]],
        )
        dispute.parties = [Party(name=name, side=side, phone=f"1390737{n:02d}{i:02d}") for i, (name, side) in enumerate(case["parties"])]
        db.add(dispute)
        await db.flush()
        start = _at(today, case["session"], 15)
        session = MediationSession(
            dispute_id=dispute.id, office_id=dispute.office_id, start=start, end=start + dt.timedelta(hours=1),
            status="ended", created_at=created + dt.timedelta(days=1), room_opened_at=start - dt.timedelta(minutes=10),
            room_closed_at=start + dt.timedelta(hours=1),
        )
        session.participants = [Participant(kind="host", role="host", display_name=host_name)] + [
            Participant(kind="expert", role=experts[i].role, display_name=experts[i].name, expert_id=experts[i].id, seat=s,
                        status="accepted")
            for s, i in enumerate(case["panel"])
        ] + [Participant(kind="party", role="party", display_name=p.name, party_id=p.id, phone=p.phone) for p in dispute.parties]
        db.add(session)
        await db.flush()
        absent = set(case.get("absent", []))
        parties = [p for p in session.participants if p.kind == "party"]
        for person in session.participants:
            key = f"expert:{case['panel'][person.seat]}" if person.kind == "expert" and person.seat is not None else (
                f"party:{parties.index(person)}" if person.kind == "party" else "host")
            if key not in absent:
                db.add(RoomEvent(session_id=session.id, participant_id=person.id, kind="join", data={}, at=start))
        outcome = Outcome(
            session_id=session.id, dispute_id=dispute.id, kind=case["kind"], summary=case.get("summary", "经专家团调解，双方达成一致。"),
            terms=case.get("terms", ""), referral_to=case.get("referral_to", ""),
            referral_reason=case.get("referral_reason", ""), recorded_at=session.end,
        )
        db.add(outcome)
        await db.flush()
        if case["kind"] == "agreement":
            await _sign(db, outcome, session, [parties[i] for i in case.get("confirmed", [])], office_name)
            results = case.get("follow_ups", [])
            for i, days in enumerate(follow_up_days):
                due = session.end + dt.timedelta(days=days)
                result = results[i] if i < len(results) else None
                db.add(FollowUp(dispute_id=dispute.id, outcome_id=outcome.id, due_at=due, status=result or "pending",
                                note={"kept": "双方按协议履行，关系缓和。", "relapsed": "子女未按约定支付生活费，老人再次求助。"}.get(result or "", ""),
                                done_at=due if result else None))
                if result == "relapsed":
                    dispute.status = "registered"
                elif result == "kept" and dispute.status == "resolved":
                    dispute.status = "followed_up"
    await db.flush()


def _drawn(seed: int) -> bytes:
    """A demo signature: a few strokes of a pen, different for each signer."""
    image = Image.new("RGBA", (360, 120), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    points = [(20 + x * 8, 60 + 30 * math.sin(x / (2 + seed % 3) + seed) * math.cos(x / 7)) for x in range(40)]
    pen.line(points, fill=(20, 20, 60, 255), width=4, joint="curve")
    pen.line([(40, 90 - seed % 20), (300, 80 + seed % 15)], fill=(20, 20, 60, 255), width=3)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def seal_image(name: str) -> bytes:
    """A demo seal: a red ring with a star (an office uploads a photo of its real seal)."""
    image = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    red = (200, 20, 20, 230)
    pen.ellipse((10, 10, 290, 290), outline=red, width=12)
    star = [(150 + r * math.sin(a * math.pi / 5), 150 - r * math.cos(a * math.pi / 5))
            for a, r in zip(range(10), [70, 28] * 5)]
    pen.polygon(star, fill=red)
    pen.line([(70, 230), (230, 230)], fill=red, width=8 + len(name) % 3)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


async def _sign(db: AsyncSession, outcome: Outcome, session: MediationSession, signed: list[Participant],
                office_name: str) -> None:
    """A past agreement as its parties signed it (identity checked, codes used); sealed where
    every party and the host signed."""
    await db.flush()
    ctx = await documents.context(db, outcome, office_name, "Asia/Shanghai")
    text = await documents.agreement_text(db, ctx)
    doc = await signing.start_document(db, outcome.id, "agreement", text)
    host = next(p for p in session.participants if p.kind == "host")
    parties = [p for p in session.participants if p.kind == "party"]
    everyone = len(signed) == len(parties)
    at = session.end + dt.timedelta(minutes=20)
    for n, person in enumerate([*signed, *([host] if everyone else [])]):
        identity: dict[str, Any] = {}
        if person.kind == "party":
            check = IdentityCheck(participant_id=person.id, document_type="resident_id", number_last4=f"{1000 + person.id * 37 % 9000}"[-4:],
                                  checked_by=host.display_name, checked_at=session.start + dt.timedelta(minutes=5))
            db.add(check)
            identity = signing.identity_view(check)
        db.add(Signature(document_id=doc.id, version=doc.version, participant_id=person.id,
                         capacity=signing.CAPACITY[person.kind], name=person.display_name, image_png=_drawn(person.id),
                         text_sha256=signing.sha256(text), identity=identity,
                         phone_masked=signing.mask_phone(person.phone) if person.kind == "party" else "",
                         ip_address="10.0.0.8", user_agent="demo", signed_at=at + dt.timedelta(minutes=n)))
    if everyone:
        doc.sealed_at, doc.sealed_by = at + dt.timedelta(minutes=10), host.display_name
    await db.flush()


async def build_reviews(db: AsyncSession, today: dt.date, timezone: str, weeks: int = 6) -> None:
    """The weekly reviews of the last few weeks, each as the weekly job would have built it on
    the Monday morning after its week (early warnings use today's risk and status)."""
    offices = list(await db.scalars(select(Office.id).where(Office.kind == "office")))
    for back in range(weeks, 0, -1):
        week = review.week_of(today) - dt.timedelta(days=7 * back)
        built_at = dt.datetime.combine(week + dt.timedelta(days=7), dt.time(8), ZoneInfo(timezone))
        for office_id in offices:
            await review.review_office(db, office_id, week, timezone, built_at)
