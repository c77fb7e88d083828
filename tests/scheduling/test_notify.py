"""Invitations by real SMTP with ICS, reschedule and cancel updates, SMS recorded, retries."""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Callable
from email.message import Message
from typing import Any

import httpx
import pytest
from icalendar import Calendar

from foundation.config import Settings
from tests.conftest import Inbox
from tests.scheduling.conftest import booking, next_monday


@pytest.fixture
def settings(make_settings: Callable[..., Settings], smtp: tuple[Inbox, int]) -> Settings:
    return make_settings(smtp_host="127.0.0.1", smtp_port=smtp[1], smtp_from="tiaojie@jinshan.example.cn")


def calendar_of(mail: Message) -> Calendar:
    part = next(p for p in mail.walk() if p.get_content_type() == "text/calendar")
    return Calendar.from_ical(part.get_payload(decode=True))


def body_of(mail: Message) -> str:
    part = next(p for p in mail.walk() if p.get_content_type() == "text/plain")
    return part.get_payload(decode=True).decode()


async def outbox_settled(client: httpx.AsyncClient, count: int) -> list[dict[str, Any]]:
    for _ in range(200):
        rows = (await client.get("/api/outbox")).json()
        if len(rows) >= count and all(r["status"] not in ("pending", "sending") for r in rows):
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"outbox did not settle: {rows}")


async def test_invitation_reschedule_cancel_by_smtp_with_ics(
    staff_client: httpx.AsyncClient, pool: dict[str, Any], smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    lawyer = pool["experts"]["lawyer"][0]
    await staff_client.patch(f"/api/experts/{lawyer['id']}", json={"timezone": "Europe/Berlin"})
    await staff_client.post(f"/api/disputes/{pool['dispute']['id']}/parties", json={"name": "王五", "side": "respondent", "phone": "13807370000"})
    # The lawyer's windows are now in Berlin time: book anyway, as agreed by phone.
    response = await staff_client.post("/api/sessions", json=booking(pool, next_monday(10), override_availability=True))
    assert response.status_code == 201, response.text
    session = response.json()

    mails = await inbox.wait_for(5)
    assert sorted(m["To"] for m in mails) == sorted(
        [e["email"] for e in (pool["experts"][r][0] for r in ("legal_officer", "lawyer", "governance_specialist"))]
        + ["zhang@example.cn", "li@example.cn"]
    )
    to_lawyer = next(m for m in mails if m["To"] == lawyer["email"])
    assert "远程调解邀请" in to_lawyer["Subject"]
    text = body_of(to_lawyer)
    assert "Europe/Berlin" in text and "03:00–04:00" in text  # 10:00 in Shanghai, in the lawyer's zone
    lawyer_link = next(p["join_url"] for p in session["participants"] if p["expert_id"] == lawyer["id"])
    assert lawyer_link in text
    assert "律师" in text and "法制民警" in text and "综治专干" in text
    to_party = next(m for m in mails if m["To"] == "zhang@example.cn")
    assert "北京时间" in body_of(to_party) and "10:00–11:00" in body_of(to_party)

    invite = calendar_of(to_lawyer)
    assert str(invite["METHOD"]) == "REQUEST"
    event = invite.walk("VEVENT")[0]
    uid = str(event["UID"])
    assert int(event["SEQUENCE"]) == 0
    attendees = event.get("ATTENDEE")
    assert sorted(str(a) for a in attendees) == sorted(
        f"mailto:{pool['experts'][r][0]['email']}" for r in ("legal_officer", "lawyer", "governance_specialist")
    )
    assert event.decoded("DTSTART") == next_monday(10).astimezone(dt.timezone.utc)

    rows = await outbox_settled(staff_client, 6)
    sms = [r for r in rows if r["channel"] == "sms"]
    assert len(sms) == 1 and sms[0]["status"] == "recorded" and "nothing was sent" in sms[0]["last_error"]
    assert sum(r["status"] == "sent" for r in rows) == 5

    moved = await staff_client.post(f"/api/sessions/{session['id']}/reschedule",
                                    json={"start": next_monday(14).isoformat(), "override_availability": True})
    assert moved.status_code == 200, moved.text
    mails = await inbox.wait_for(10)
    update = next(m for m in mails[5:] if m["To"] == lawyer["email"])
    assert "时间变更" in update["Subject"]
    updated = calendar_of(update).walk("VEVENT")[0]
    assert str(updated["UID"]) == uid and int(updated["SEQUENCE"]) == 1
    assert updated.decoded("DTSTART") == next_monday(14).astimezone(dt.timezone.utc)

    await staff_client.post(f"/api/sessions/{session['id']}/cancel", json={"reason": "申请人住院"})
    mails = await inbox.wait_for(15)
    cancel = next(m for m in mails[10:] if m["To"] == lawyer["email"])
    cancelled = calendar_of(cancel)
    assert str(cancelled["METHOD"]) == "CANCEL"
    event = cancelled.walk("VEVENT")[0]
    assert str(event["UID"]) == uid and int(event["SEQUENCE"]) == 2 and str(event["STATUS"]) == "CANCELLED"
    assert "申请人住院" in body_of(cancel)


async def test_failed_delivery_is_listed_and_retried(
    make_settings: Callable[..., Settings], smtp: tuple[Inbox, int]
) -> None:
    from tests.conftest import add_staff, free_port, log_in, started

    inbox, port = smtp
    dead = make_settings(smtp_host="127.0.0.1", smtp_port=free_port())
    async with started(dead) as running:
        await add_staff(running)
        client = await log_in(running)
        await client.post("/api/experts", json={"name": "李敏", "role": "lawyer", "email": "limin@example.cn"})
        dispute = (await client.post("/api/disputes", json={"title": "租房押金", "dispute_type": "rental"})).json()
        body = {"dispute_id": dispute["id"], "start": next_monday(10).isoformat(), "end": next_monday(11).isoformat(),
                "experts": [{"expert_id": 1}], "override_availability": True}
        assert (await client.post("/api/sessions", json=body)).status_code == 201
        rows = await outbox_settled(client, 1)
        failed = (await client.get("/api/outbox?status=failed")).json()
        assert [r["recipient"] for r in failed] == ["limin@example.cn"] and failed[0]["last_error"]
        assert rows[0]["status"] == "failed"

        # The SMTP server comes back: retry delivers it, once.
        object.__setattr__(dead, "smtp_port", port)
        retried = await client.post(f"/api/outbox/{failed[0]['id']}/retry")
        assert retried.status_code == 200
        await inbox.wait_for(1)
        rows = await outbox_settled(client, 1)
        assert rows[0]["status"] == "sent" and rows[0]["attempts"] == 2
        assert (await client.post(f"/api/outbox/{failed[0]['id']}/retry")).status_code == 409


@pytest.mark.parametrize("provider", ["aliyun", "tencent"])
async def test_sms_reach_residents_through_the_office_s_sms_service(
    running: Any, staff_client: httpx.AsyncClient, pool: dict[str, Any], settings: Settings, provider: str,
) -> None:
    from scheduling import sms
    from scheduling.outbox import deliver_pending
    from tests.scheduling import sms_services

    await running.app.state.deliverer.stop()  # deliver by hand, through the service
    stand_in = sms_services.Service(templates={"SMS_4501": ("name", "time", "link"), "SMS_4503": ("name", "title")})
    app = (sms_services.aliyun if provider == "aliyun" else sms_services.tencent)(stand_in)
    async with sms_services.running(app, stand_in):
        office = dataclasses.replace(
            settings, sms_provider=provider, sms_key_id=sms_services.KEY_ID, sms_key_secret=sms_services.KEY_SECRET,
            sms_sign_name=sms_services.SIGN_NAME, sms_app_id=sms_services.APP_ID, sms_endpoint=stand_in.url,
            sms_templates=("invite=SMS_4501/name/time/link", "cancel=SMS_4503/name/title"),
        )
        gateway = sms.gateway(office)
        await staff_client.post(f"/api/disputes/{pool['dispute']['id']}/parties", json={"name": "王五", "side": "respondent", "phone": "13807370000"})
        await staff_client.post(f"/api/disputes/{pool['dispute']['id']}/parties", json={"name": "赵六", "side": "respondent", "phone": "13807370009"})
        stand_in.refuse["13807370009"] = "isv.BUSINESS_LIMIT_CONTROL" if provider == "aliyun" else "LimitExceeded.PhoneNumberDailyLimit"
        session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
        await deliver_pending(running.app.state.db_sessions, office, gateway)

        assert [m["phone"] for m in stand_in.sent] == ["13807370000"]
        params = stand_in.sent[0]["params"]
        assert stand_in.sent[0]["template"] == "SMS_4501" and params["name"] == "王五"
        assert params["time"].endswith("（北京时间）") and "/join/" in params["link"]
        rows = {r["recipient"]: r for r in (await staff_client.get("/api/outbox")).json() if r["channel"] == "sms"}
        assert rows["13807370000"]["status"] == "sent" and rows["13807370000"]["receipt"]
        refused = rows["13807370009"]
        assert refused["status"] == "failed" and refused["last_error"].startswith(("发送过于频繁", "该号码当日短信已达上限"))
        page = await staff_client.get(f"/sessions/{session['id']}")
        assert "短信未发出：" in page.text and f"平台回执编号 {rows['13807370000']['receipt']}" in page.text

        # A kind without a template, and keys the service does not know, are told in Chinese.
        reminder = await _queue_sms(running, "reminder_15m")
        wrong = sms.gateway(dataclasses.replace(office, sms_key_secret="not-the-secret"))
        cancel = await _queue_sms(running, "cancel")
        await deliver_pending(running.app.state.db_sessions, office, gateway)
        assert (await _row(running, reminder)).last_error.startswith("没有为“reminder_15m”类消息配置短信模板")
        assert (await _row(running, cancel)).status == "sent"
        again = await _queue_sms(running, "cancel", key="again")
        await deliver_pending(running.app.state.db_sessions, office, wrong)
        assert "不正确，请核对配置" in (await _row(running, again)).last_error


async def _queue_sms(running: Any, kind: str, key: str = "") -> str:
    from scheduling import outbox

    key = f"{kind}:{key}:by-hand"
    async with running.app.state.db_sessions() as db, db.begin():
        await outbox.queue(db, [dict(key=key, kind=kind, channel="sms", recipient="13807370000", body="",
                                     params={"name": "王五", "time": "12月8日", "link": "", "title": "宠物狗纠纷"})])
    return key


async def _row(running: Any, key: str) -> Any:
    from sqlalchemy import select

    from scheduling.outbox import OutboxMessage

    async with running.app.state.db_sessions() as db:
        return await db.scalar(select(OutboxMessage).where(OutboxMessage.key == key))


async def test_a_send_cut_short_is_sent_later(
    running: Any, settings: Settings, smtp: tuple[Inbox, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import update

    from scheduling import outbox

    inbox, _ = smtp
    await running.app.state.deliverer.stop()  # deliver by hand
    now = dt.datetime.now(dt.timezone.utc)
    async with running.app.state.db_sessions() as db, db.begin():
        for key, claimed in (("abandoned", now - dt.timedelta(minutes=11)), ("in-flight", now - dt.timedelta(minutes=1))):
            await outbox.queue(db, [dict(key=key, kind="follow_up", channel="email",
                                         recipient=f"{key}@example.cn", subject=key, body="回访提醒")])
            await db.execute(update(outbox.OutboxMessage).where(outbox.OutboxMessage.key == key)
                             .values(status="sending", claimed_at=claimed))
        await outbox.queue(db, [dict(key="stopped", kind="follow_up", channel="email",
                                     recipient="stopped@example.cn", subject="stopped", body="回访提醒")])

    # A process that died mid-send left "abandoned" claimed 11 minutes ago: it is sent again;
    # "in-flight" may still be on its way from another process: it is left alone.
    assert await outbox.deliver_pending(running.app.state.db_sessions, settings) == 2
    assert sorted(m["To"] for m in await inbox.wait_for(2)) == ["abandoned@example.cn", "stopped@example.cn"]

    # A delivery cancelled mid-send (the server stopping) keeps what it sent and hands back the
    # rest of its batch: the message being sent and those after it.
    async with running.app.state.db_sessions() as db, db.begin():
        await outbox.queue(db, [dict(key=key, kind="follow_up", channel="email", recipient=f"{key}@example.cn",
                                     subject=key, body="回访提醒") for key in ("first", "cut", "after")])
    started = asyncio.Event()
    sent = outbox.mail.send

    async def slow_send(settings: Settings, recipient: str, *args: Any, **kwargs: Any) -> None:
        if recipient == "first@example.cn":
            return await sent(settings, recipient, *args, **kwargs)
        started.set()
        await asyncio.sleep(30)

    monkeypatch.setattr(outbox.mail, "send", slow_send)
    task = asyncio.create_task(outbox.deliver_pending(running.app.state.db_sessions, settings))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    statuses = {m["key"]: m["status"] for m in (await _outbox(running))}
    assert statuses["first"] == "sent" and statuses["cut"] == statuses["after"] == "pending"
    assert statuses["in-flight"] == "sending"


async def test_a_delivery_stopped_while_it_marks_a_message_sent_still_marks_it(
    running: Any, settings: Settings, smtp: tuple[Inbox, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stop's cancel came while a sent message was being marked (a busy database) and again
    # two seconds later: the mark was cut off and nothing was handed back, so the message stayed
    # "sending", and the rest of its batch with it, for ten minutes (the reminder test under load).
    from scheduling import outbox

    inbox, _ = smtp
    await running.app.state.deliverer.stop()  # deliver by hand
    async with running.app.state.db_sessions() as db, db.begin():
        await outbox.queue(db, [dict(key=key, kind="follow_up", channel="email", recipient=f"{key}@example.cn",
                                     subject=key, body="回访提醒") for key in ("first", "second", "third")])
    marking = asyncio.Event()
    mark = outbox._mark

    async def slow_mark(sessions: Any, results: list[dict[str, Any]]) -> None:
        if any(r["status"] == "sent" for r in results):
            marking.set()
            await asyncio.sleep(0.5)
        await mark(sessions, results)

    monkeypatch.setattr(outbox, "_mark", slow_mark)
    task = asyncio.create_task(outbox.deliver_pending(running.app.state.db_sessions, settings))
    await marking.wait()
    task.cancel()
    await asyncio.sleep(0.1)
    task.cancel()  # as cancel_and_wait does while a task runs on
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [m["To"] for m in await inbox.wait_for(1)] == ["first@example.cn"]
    statuses = {m["key"]: m["status"] for m in await _outbox(running)}
    assert statuses == {"first": "sent", "second": "pending", "third": "pending"}


async def _outbox(running: Any) -> list[dict[str, Any]]:
    from scheduling import outbox

    async with running.app.state.db_sessions() as db:
        return await outbox.list_messages(db)



async def test_the_deliverer_stops_even_when_kicked_as_it_is_stopped(running: Any) -> None:
    # A job queues mail and kicks the deliverer just as the server stops. asyncio.wait_for
    # (Python 3.11) swallowed a cancel that arrived together with the wake-up, so the stop
    # waited forever: the hang that used up a whole CI run.
    deliverer = running.app.state.deliverer
    await asyncio.sleep(0.2)  # the start-up round is over; the deliverer waits to be woken
    deliverer.kick()
    stopping = asyncio.create_task(deliverer.stop())
    done, _ = await asyncio.wait({stopping}, timeout=5)
    assert done, "the deliverer did not stop"
