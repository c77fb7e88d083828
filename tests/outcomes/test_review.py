"""The weekly review (每周研判): built from the register, the audit log and the sessions; stored,
shown, and e-mailed by the weekly job through a real SMTP server."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import update

from foundation.config import Settings
from foundation.database import utcnow
from outcomes import jobs, review
from outcomes.models import FollowUp
from scheduling.models import MediationSession
from scheduling.scheduler import run_job
from tests.conftest import Inbox, Running, add_staff, log_in, started
from tests.scheduling.conftest import booking, next_monday

SH = ZoneInfo("Asia/Shanghai")


async def register(staff: httpx.AsyncClient, title: str, risk: str, party: tuple[str, str]) -> dict[str, Any]:
    response = await staff.post("/api/disputes", json={
        "title": title, "dispute_type": "labour", "risk_level": risk,
        "parties": [{"name": party[0], "phone": party[1], "side": "applicant"}],
    })
    assert response.status_code == 201, response.text
    return response.json()


async def make_week(running: Running, staff: httpx.AsyncClient, pool: dict[str, Any]) -> dict[str, Any]:
    """This week: four new disputes, one raised in risk, one reported again, one mediated
    session with an agreement that later relapsed, one overdue follow-up."""
    pet = pool["dispute"]  # high risk, registered this week
    wages = await register(staff, "拖欠工资", "medium", ("王五", "13800000001"))
    again = await register(staff, "再次讨薪", "medium", ("王五", "13800000001"))
    noise = await register(staff, "装修噪音", "high", ("赵六", ""))
    assert (await staff.patch(f"/api/disputes/{pet['id']}", json={"risk_level": "urgent"})).status_code == 200
    assert (await staff.patch(f"/api/disputes/{wages['id']}", json={"risk_level": "low"})).status_code == 200  # lowered: no warning

    session = (await staff.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    outcome = (await staff.post(f"/api/sessions/{session['id']}/outcome", json={"kind": "agreement", "terms": "拴绳遛狗"})).json()
    now = utcnow()
    monday = dt.datetime.combine(review.week_of(now.astimezone(SH).date()), dt.time(), SH)
    held_at = monday + (now - monday) / 2  # earlier this week, whenever the test runs
    first, second = (f["id"] for f in outcome["follow_ups"])
    async with running.app.state.db_sessions() as db, db.begin():
        await db.execute(update(MediationSession).where(MediationSession.id == session["id"])
                         .values(start=held_at, end=held_at + dt.timedelta(seconds=1)))
        await db.execute(update(FollowUp).where(FollowUp.id == second).values(due_at=now - dt.timedelta(minutes=1)))
    relapse = await staff.post(f"/api/follow-ups/{first}", json={"result": "relapsed", "note": "又起争执"})
    assert relapse.status_code == 200
    return {"pet": pet, "wages": wages, "again": again, "noise": noise, "session": session, "overdue": second}


async def test_review_counts_the_week(running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    made = await make_week(running, staff_client, pool)
    response = await staff_client.post("/api/reviews", json={"week_of": utcnow().astimezone(SH).date().isoformat()})
    assert response.status_code == 201, response.text
    data = response.json()

    assert data["new_disputes"]["count"] == 4
    assert data["new_disputes"]["by_type"] == {"animals": 1, "labour": 3}
    assert data["new_disputes"]["by_risk"] == {"urgent": 1, "high": 1, "medium": 1, "low": 1}  # as assessed now
    escalating = {e["dispute_id"]: e["reasons"] for e in data["escalating"]}
    assert escalating == {made["pet"]["id"]: ["reopened", "risk_raised"], made["again"]["id"]: ["repeat_report"]}
    assert data["sessions"]["held"] == 1 and data["sessions"]["by_outcome"] == {"agreement": 1}
    assert [f["follow_up_id"] for f in data["overdue_follow_ups"]] == [made["overdue"]]
    warnings = {w["dispute_id"]: w["reasons"] for w in data["early_warnings"]["测试警务室"]}
    assert warnings == {
        made["pet"]["id"]: ["high_risk_unscheduled", "reopened", "risk_raised"],
        made["noise"]["id"]: ["high_risk_unscheduled"],
        made["again"]["id"]: ["repeat_report"],
    }

    # Stored once per week: building again replaces it; listed, read back, shown as a page.
    again = (await staff_client.post("/api/reviews", json={"week_of": data["week_start"]})).json()
    assert again["id"] == data["id"]
    listed = (await staff_client.get("/api/reviews")).json()
    assert len(listed) == 1 and listed[0]["new_disputes"] == 4 and listed[0]["early_warnings"] == 3
    assert (await staff_client.get(f"/api/reviews/{data['id']}")).json()["escalating"] == data["escalating"]
    page = await staff_client.get(f"/reviews/{data['id']}")
    assert page.status_code == 200 and "再次讨薪" in page.text and "同一当事人再次登记" in page.text
    assert (await staff_client.get("/reviews")).status_code == 200
    assert (await staff_client.get("/api/reviews/999")).status_code == 404
    assert (await staff_client.post("/api/reviews", json={"week_of": "last week"})).status_code == 422

    # Last week (nothing happened then) is empty but for what is still overdue and still at risk.
    last_week = review.week_of(utcnow().astimezone(SH).date()) - dt.timedelta(days=7)
    empty = (await staff_client.post("/api/reviews", json={"week_of": last_week.isoformat()})).json()
    assert empty["new_disputes"]["count"] == 0 and empty["escalating"] == [] and empty["sessions"]["held"] == 0
    assert len(empty["overdue_follow_ups"]) == 1


async def test_weekly_job_stores_and_mails_the_review(
    make_settings: Callable[..., Settings], smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    settings = make_settings(smtp_host="127.0.0.1", smtp_port=port, review_recipients=("chief@example.cn", "jinshan@example.cn"))
    async with started(settings) as running:
        job = running.app.state.jobs.scheduler.get_job("weekly-review")
        next_run = job.trigger.due.astimezone(SH)
        assert next_run.weekday() == 0 and next_run.hour == 8 and next_run.minute == 0
        assert next_run > utcnow() and next_run - utcnow() <= dt.timedelta(days=7)

        await add_staff(running)
        staff = await log_in(running)
        await register(staff, "土地边界纠纷", "urgent", ("孙七", "13900000002"))
        # What the scheduler runs when the week is due (see tests/scheduling/test_jobs.py for
        # the scheduler's side: once per due time, then on to the next week).
        await run_job(*job.args)
        moved = running.app.state.jobs.scheduler.get_job("weekly-review").trigger.due
        assert moved - job.trigger.due == dt.timedelta(days=7)
        mails = await inbox.wait_for(2)
        assert sorted(m["To"] for m in mails) == ["chief@example.cn", "jinshan@example.cn"]
        body = mails[0].get_payload(decode=True).decode()
        assert "每周矛盾纠纷研判" in body and "土地边界纠纷" in body and "高风险纠纷尚未安排调解" in body
        listed = (await staff.get("/api/reviews")).json()
        last_week = review.last_full_week(utcnow(), "Asia/Shanghai")
        assert [r["week_start"] for r in listed] == [last_week.isoformat()]
        assert f"/reviews/{listed[0]['id']}" in body
        async with running.app.state.db_sessions() as db, db.begin():
            await jobs.weekly_review(db)  # a second run of the review itself sends nothing twice
        messages = (await staff.get("/api/outbox")).json()
        assert len([m for m in messages if m["kind"] == "weekly_review"]) == 2
