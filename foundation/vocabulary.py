"""The office's vocabulary: codes stored in the database, with their Chinese and English labels."""
from __future__ import annotations

import enum


class Role(enum.StrEnum):
    """Expert roles in the pool (调解专家库)."""

    LEGAL_OFFICER = "legal_officer"
    LAWYER = "lawyer"
    RETIRED_CADRE = "retired_cadre"
    GOVERNANCE_SPECIALIST = "governance_specialist"
    COUNSELLOR = "counsellor"
    MEDIATOR = "mediator"


class DisputeType(enum.StrEnum):
    """Kinds of dispute; also an expert's specialties."""

    NEIGHBOUR = "neighbour"
    FAMILY = "family"
    LABOUR = "labour"
    RENTAL = "rental"
    LAND = "land"
    CONSUMER = "consumer"
    TRAFFIC = "traffic"
    ANIMALS = "animals"
    PROPERTY = "property"
    OTHER = "other"


class RiskLevel(enum.StrEnum):
    """Risk level (风险等级) set when a dispute is registered or reviewed."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


LABELS: dict[str, tuple[str, str]] = {
    # roles
    "legal_officer": ("法制民警", "Legal-affairs officer"),
    "lawyer": ("律师", "Lawyer"),
    "retired_cadre": ("退休干部", "Retired cadre"),
    "governance_specialist": ("综治专干", "Community governance specialist"),
    "counsellor": ("心理咨询师", "Psychological counsellor"),
    "mediator": ("调解员", "Mediator"),
    "host": ("主持人", "Host"),
    "party": ("当事人", "Party"),
    "onsite": ("现场终端", "On-site terminal"),
    "observer": ("观察员", "Observer"),
    "expert": ("专家", "Expert"),
    # dispute types
    "neighbour": ("邻里纠纷", "Neighbours"),
    "family": ("婚姻家庭纠纷", "Family"),
    "labour": ("劳资纠纷", "Labour and wages"),
    "rental": ("租赁纠纷", "Rental"),
    "land": ("土地纠纷", "Land"),
    "consumer": ("消费纠纷", "Consumer"),
    "traffic": ("交通事故纠纷", "Traffic"),
    "animals": ("宠物纠纷", "Animals and pets"),
    "property": ("物业纠纷", "Property management"),
    "other": ("其他纠纷", "Other"),
    # risk levels
    "low": ("低", "Low"),
    "medium": ("中", "Medium"),
    "high": ("高", "High"),
    "urgent": ("紧急", "Urgent"),
    # dispute status
    "registered": ("已登记", "Registered"),
    "scheduled": ("已排期", "Scheduled"),
    "in_mediation": ("调解中", "In mediation"),
    "resolved": ("已化解", "Resolved"),
    "failed": ("调解不成", "Failed"),
    "referred": ("已移交", "Referred"),
    "followed_up": ("已回访", "Followed up"),
    # sessions, participants and notifications
    "pending": ("待确认", "Pending"),
    "confirmed": ("已确认", "Confirmed"),
    "cancelled": ("已取消", "Cancelled"),
    "ended": ("已结束", "Ended"),
    "remote": ("远程视频", "Remote"),
    "awaiting_experts": ("待专家确认", "Waiting for experts"),
    "expert_declined": ("有专家拒绝", "An expert declined"),
    "invited": ("已邀请", "Invited"),
    "accepted": ("已接受", "Accepted"),
    "declined": ("已婉拒", "Declined"),
    "replaced": ("已替换", "Replaced"),
    "removed": ("已移出", "Removed"),
    "sent": ("已发送", "Sent"),
    "email": ("邮件", "E-mail"),
    "sms": ("短信", "SMS"),
    "invite": ("邀请", "Invitation"),
    "update": ("变更", "Change"),
    "cancel": ("取消", "Cancellation"),
    "reminder_24h": ("提前一天提醒", "Day-before reminder"),
    "reminder_15m": ("开始前提醒", "15-minute reminder"),
    # outcomes, referrals and follow-ups
    "agreement": ("达成协议", "Agreement"),
    "no_agreement": ("调解不成", "No agreement"),
    "adjourned": ("择期再调", "Adjourned"),
    "not_recorded": ("结果未录入", "Outcome not recorded"),
    "court": ("法院立案", "Court filing"),
    "hotline_12345": ("12345 热线", "12345 hotline"),
    "department": ("其他部门", "Another department"),
    "kept": ("协议履行良好", "Kept"),
    "relapsed": ("纠纷反复", "Relapsed"),
    # weekly review: why a dispute is escalating or needs an early warning
    "risk_raised": ("风险等级上升", "Risk raised"),
    "reopened": ("纠纷反复（化解后重新登记）", "Reopened after being settled"),
    "repeat_report": ("同一当事人再次登记", "Same person reported again"),
    "high_risk_unscheduled": ("高风险纠纷尚未安排调解", "High risk, no session booked"),
    # time zones: the office's own is named as people say it; others by their IANA name
    "Asia/Shanghai": ("北京时间", "Beijing time"),
    # query parameters named in error messages
    "from": ("开始日期", "from"),
    "to": ("结束日期", "to"),
    "date": ("日期", "date"),
    "span": ("范围", "span"),
    # party sides
    "applicant": ("申请人", "Applicant"),
    "respondent": ("被申请人", "Respondent"),
}


def label(code: str, lang: str = "zh") -> str:
    """The label of a code in 'zh' or 'en'; the code itself when it has none."""
    pair = LABELS.get(code)
    if pair is None:
        return code
    return pair[1] if lang == "en" else pair[0]
