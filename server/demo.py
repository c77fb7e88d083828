"""Demo data: the 金山警务室 remote mediation centre, its expert pool and some disputes.

Drawn from the reports in shared/seeds (the Yiyang pet-dog case, an elderly couple, wages,
rent, land). Loading twice changes nothing.
"""
from __future__ import annotations

import datetime as dt
import secrets
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from accounts.service import create_staff
from disputes.models import Dispute, Party
from experts.models import DateOverride, Expert, ExpertOffice, Office, WeeklyWindow
from foundation.config import Settings
from foundation.database import lock_schema
from scheduling.models import MediationSession, Participant
from server.demo_history import SECOND_OFFICE, build_reviews, load_history

OFFICE_NAME = "金山警务室"
DISTRICT_NAME = "益阳市公安局高新分局"
TZ = ZoneInfo("Asia/Shanghai")

# name, role, organisation, specialties, languages, weekly windows (weekday, start, end)
_WORKDAYS_AM = [(d, "09:00", "12:00") for d in range(5)]
_WORKDAYS_PM = [(d, "14:00", "17:30") for d in range(5)]
_EVENINGS = [(d, "19:00", "21:00") for d in range(5)]
_WEEKEND = [(d, "09:00", "17:00") for d in (5, 6)]
EXPERTS: list[tuple[str, str, str, list[str], list[str], list[tuple[int, str, str]]]] = [
    ("刘国荣", "legal_officer", "益阳市公安局高新分局法制大队", ["neighbour", "animals", "property"], ["普通话", "益阳话"], _WORKDAYS_AM + _WORKDAYS_PM),
    ("曾晔", "legal_officer", "高新分局政工室", ["family", "labour"], ["普通话"], _WORKDAYS_PM),
    ("曹焕球", "legal_officer", "朝阳派出所", ["land", "neighbour"], ["普通话", "益阳话"], _WORKDAYS_AM + _EVENINGS),
    ("周涌清", "legal_officer", "新区派出所", ["consumer", "traffic"], ["普通话"], _WORKDAYS_AM),
    ("王律师", "lawyer", "湖南金洲律师事务所", ["neighbour", "property", "rental"], ["普通话"], _WORKDAYS_PM + _EVENINGS),
    ("李敏", "lawyer", "益阳法律援助中心", ["labour", "family"], ["普通话", "益阳话"], _WORKDAYS_AM + _WORKDAYS_PM),
    ("陈志刚", "lawyer", "湖南天地人律师事务所", ["traffic", "consumer", "rental"], ["普通话", "粤语"], _EVENINGS + _WEEKEND),
    ("赵卫平", "lawyer", "益阳市律师协会", ["land", "property"], ["普通话"], _WORKDAYS_AM),
    ("舒贵红", "retired_cadre", "原金山街道办", ["neighbour", "family"], ["益阳话", "普通话"], _WORKDAYS_AM + _WEEKEND),
    ("马建国", "retired_cadre", "原高新区管委会", ["land", "neighbour"], ["益阳话"], _WORKDAYS_AM + _WORKDAYS_PM),
    ("黄国华", "retired_cadre", "原朝阳街道人大工委", ["family", "animals"], ["普通话", "益阳话"], _WORKDAYS_PM + _WEEKEND),
    ("卜磊", "governance_specialist", "金山社区综治办", ["neighbour", "animals", "property"], ["普通话", "益阳话"], _WORKDAYS_AM + _WORKDAYS_PM),
    ("杨丽华", "governance_specialist", "鸬鹚桥社区", ["family", "rental"], ["普通话"], _WORKDAYS_AM + _WORKDAYS_PM),
    ("谢林", "governance_specialist", "谢林港镇综治中心", ["land", "labour"], ["益阳话"], _WORKDAYS_PM + _EVENINGS),
    ("何静", "counsellor", "益阳市心理健康协会", ["family"], ["普通话"], _EVENINGS + _WEEKEND),
    ("彭晓燕", "counsellor", "高新区社会工作服务站", ["family", "neighbour"], ["普通话", "益阳话"], _WORKDAYS_PM),
    ("马哥", "mediator", "马哥调解室", ["neighbour", "consumer", "labour"], ["普通话", "海南话"], _WORKDAYS_AM + _WORKDAYS_PM + _EVENINGS),
    ("邓桂英", "mediator", "金山人民调解委员会", ["family", "neighbour"], ["益阳话", "普通话"], _WORKDAYS_AM),
    ("胡昌清", "mediator", "朝阳人民调解委员会", ["rental", "property"], ["普通话"], _WORKDAYS_PM + _WEEKEND),
    ("罗志强", "mediator", "羊舞岭社区调解室", ["land", "traffic"], ["益阳话"], _WORKDAYS_AM + _EVENINGS),
]

DISPUTES: list[dict[str, object]] = [
    {
        "title": "邻居宠物狗纠纷引发肢体冲突", "dispute_type": "animals", "risk_level": "high",
        "cause": "邻居家宠物狗多次在楼道便溺并追咬老人，双方言语冲突后发生推搡。",
        "place": "金山社区3栋2单元", "nature": "邻里纠纷，已发生肢体冲突", "scale": 4,
        "people_involved": "两户邻居，双方家属各一人", "days_ago": 12,
        "development": "社区民警多次上门调解未果，双方互不相让，有再次冲突风险。",
        "parties": [("张建军", "applicant", "13807371001"), ("李秀兰", "respondent", "13807371002")],
    },
    {
        "title": "老年夫妻家庭矛盾", "dispute_type": "family", "risk_level": "medium",
        "cause": "退休后生活习惯差异，子女赡养分工引发长期争吵。",
        "place": "鸬鹚桥社区", "nature": "婚姻家庭纠纷", "scale": 4,
        "people_involved": "老年夫妻及两名子女", "days_ago": 6,
        "development": "女方曾离家出走两日，子女请求警务室介入。",
        "parties": [("王德福", "applicant", "13907372001"), ("周桂兰", "respondent", "13907372002")],
    },
    {
        "title": "装修工人工资拖欠", "dispute_type": "labour", "risk_level": "urgent",
        "cause": "包工头以业主未结清尾款为由拖欠6名工人工资共计4.2万元。",
        "place": "高新区龙岭工业园", "nature": "劳资纠纷，群体性", "scale": 7,
        "people_involved": "包工头一人，工人六人", "days_ago": 3,
        "development": "工人聚集在工地门口，扬言到区政府上访，临近春节情绪激动。",
        "parties": [("刘春生", "applicant", "13607373001"), ("陈老板", "respondent", "13607373002")],
    },
    {
        "title": "租房押金退还争议", "dispute_type": "rental", "risk_level": "low",
        "cause": "租客提前退租，房东以墙面损坏为由扣留押金3000元。",
        "place": "朝阳街道桃花仑小区", "nature": "租赁合同纠纷", "scale": 2,
        "people_involved": "房东与租客", "days_ago": 9,
        "development": "双方多次电话争吵，租客拨打12345热线。",
        "parties": [("赵小燕", "applicant", "13507374001"), ("孙国强", "respondent", "13507374002")],
    },
    {
        "title": "宅基地边界争议", "dispute_type": "land", "risk_level": "high",
        "cause": "两户村民新建围墙越过原有界址约半米。",
        "place": "谢林港镇清水潭村", "nature": "土地权属纠纷", "scale": 9,
        "people_involved": "两户村民及其亲属", "days_ago": 20,
        "development": "一方已拆除部分围墙，村组干部调解两次未成功。",
        "parties": [("罗建华", "applicant", "13707375001"), ("罗海清", "respondent", "13707375002")],
    },
    {
        "title": "物业费与停车位纠纷", "dispute_type": "property", "risk_level": "medium",
        "cause": "业主因地下车库漏水拒交物业费，物业公司锁停车位。",
        "place": "金山南路梓山湖小区", "nature": "物业服务纠纷", "scale": 30,
        "people_involved": "业主代表三人，物业公司", "days_ago": 1,
        "development": "业主群内组织集体拒缴，物业张贴催缴通知。",
        "parties": [("黄志明", "applicant", "13307376001"), ("梓山湖物业公司", "respondent", "0737-4200000")],
    },
]


# Sessions booked for the open disputes: (dispute index, panel expert indexes, when, experts accepted).
# The first starts a few minutes after loading, so its room is open at once; the next is tomorrow.
UPCOMING: list[tuple[int, list[int], str, bool]] = [
    (0, [0, 4, 11], "soon", True),
    (1, [1, 5, 12, 15], "tomorrow 15:00", False),
]


def _upcoming_start(when: str, now: dt.datetime) -> dt.datetime:
    if when == "soon":  # the next five-minute mark at least five minutes away
        soon = now + dt.timedelta(minutes=10)
        return soon.replace(minute=soon.minute - soon.minute % 5, second=0, microsecond=0)
    day, clock = when.split()
    date = now.date() + dt.timedelta(days={"today": 0, "tomorrow": 1}[day])
    return dt.datetime.combine(date, dt.time.fromisoformat(clock), TZ)


def _book_upcoming(disputes: list[Dispute], pool: list[Expert], now: dt.datetime, host_name: str) -> list[MediationSession]:
    sessions = []
    for index, panel, when, accepted in UPCOMING:
        dispute, start = disputes[index], _upcoming_start(when, now)
        dispute.status = "scheduled"
        session = MediationSession(dispute_id=dispute.id, office_id=dispute.office_id, start=start,
                                   end=start + dt.timedelta(hours=1), status="confirmed", location="金山警务室远程调解中心")
        session.participants = [Participant(kind="host", role="host", display_name=host_name, status="accepted")] + [
            Participant(kind="expert", role=pool[i].role, display_name=pool[i].name, expert_id=pool[i].id, seat=seat,
                        email=pool[i].email, phone=pool[i].phone, status="accepted" if accepted else "invited")
            for seat, i in enumerate(panel)
        ] + [Participant(kind="party", role="party", display_name=p.name, party_id=p.id, phone=p.phone) for p in dispute.parties]
        sessions.append(session)
    return sessions


async def load_demo(db: AsyncSession, *, now: dt.datetime | None = None, office_name: str = Settings.office_name) -> str | None:
    """Load the demo data set; returns the new staff password, or None if it was loaded before.
    Nodes loading it at once take turns (the schema lock): the second finds it loaded."""
    await (await db.connection()).run_sync(lock_schema)
    if await db.scalar(select(Office.id).where(Office.name == OFFICE_NAME)) is not None:
        return None
    now = (now or dt.datetime.now(TZ)).astimezone(TZ)
    today = now.date()
    district = Office(name=DISTRICT_NAME, kind="level")
    db.add(district)
    await db.flush()
    office = Office(name=OFFICE_NAME, timezone="Asia/Shanghai", parent_id=district.id)
    db.add(office)
    await db.flush()
    pool: list[Expert] = []
    for index, (name, role, org, specialties, languages, windows) in enumerate(EXPERTS):
        expert = Expert(
            office_id=office.id, name=name, role=role, organisation=org,
            phone=f"1380737{index:04d}", email=f"expert{index + 1:02d}@jinshan.example.cn",
            specialties=specialties, languages=languages, priority=100 + index,
            served=[ExpertOffice(office_id=office.id)],
        )
        expert.windows = [
            WeeklyWindow(weekday=d, start=dt.time.fromisoformat(s), end=dt.time.fromisoformat(e))
            for d, s, e in windows
        ]
        if index % 5 == 0:  # some experts are on leave one day next week
            expert.overrides = [DateOverride(date=today + dt.timedelta(days=7), note="请假")]
        db.add(expert)
        pool.append(expert)
    await db.flush()
    host_name = "金山警务室值班民警"
    await load_history(db, today, office, pool, host_name, office_name)
    open_disputes = []
    for spec in DISPUTES:
        created = dt.datetime.combine(today, dt.time(10), TZ) - dt.timedelta(days=int(spec["days_ago"]))  # type: ignore[call-overload]
        dispute = Dispute(
            office_id=office.id, created_at=created, occurred_at=created - dt.timedelta(days=2),
            **{k: v for k, v in spec.items() if k not in ("parties", "days_ago")},
        )
        dispute.parties = [Party(name=n, side=s, phone=p) for n, s, p in spec["parties"]]  # type: ignore[attr-defined]
        db.add(dispute)
        open_disputes.append(dispute)
    await db.flush()
    db.add_all(_book_upcoming(open_disputes, pool, now, host_name))
    await build_reviews(db, today, "Asia/Shanghai")
    password = secrets.token_urlsafe(9)
    second = await db.scalar(select(Office.id).where(Office.name == SECOND_OFFICE))
    for username, role, name, unit in (
        ("admin", "admin", host_name, office.id), ("jinshan", "staff", "金山警务室调解员", office.id),
        ("chaoyang-admin", "admin", "朝阳警务室管理员", second), ("chaoyang", "staff", "朝阳警务室调解员", second),
        ("supervisor", "supervisor", "高新分局督导", district.id), ("sysadmin", "sysadmin", "系统管理员", district.id),
    ):
        await create_staff(db, username, password, role=role, display_name=name, office_id=unit)
    return password
