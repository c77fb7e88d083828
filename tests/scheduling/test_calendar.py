"""Calendar data: an expert's sessions, the office schedule, the ICS subscription feed."""
from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
from icalendar import Calendar

from tests.conftest import Running
from tests.scheduling.conftest import booking, next_monday


async def test_expert_sessions_schedule_and_feed(running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    first = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    second = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(14)))).json()
    cancelled = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(16)))).json()
    await staff_client.post(f"/api/sessions/{cancelled['id']}/cancel", json={"reason": "改期"})
    lawyer = pool["experts"]["lawyer"][0]

    mine = (await staff_client.get(f"/api/experts/{lawyer['id']}/sessions")).json()
    assert [s["session_id"] for s in mine] == [first["id"], second["id"]]
    own_link = next(p["join_url"] for p in first["participants"] if p["expert_id"] == lawyer["id"])
    assert mine[0]["join_url"] == own_link and mine[0]["your_role"] == "lawyer"

    day = (await staff_client.get(f"/api/schedule?date={next_monday(10).date().isoformat()}")).json()
    assert [s["session_id"] for s in day["sessions"]] == [first["id"], second["id"]]
    week = (await staff_client.get(f"/api/schedule?date={(next_monday(10) + dt.timedelta(days=3)).date().isoformat()}&span=week")).json()
    assert len(week["sessions"]) == 2
    other_week = (await staff_client.get(f"/api/schedule?date={(next_monday(10) + dt.timedelta(days=7)).date().isoformat()}&span=week")).json()
    assert other_week["sessions"] == []
    assert (await staff_client.get("/api/schedule?span=month")).status_code == 422

    link = (await staff_client.get(f"/api/experts/{lawyer['id']}/calendar-link")).json()["url"]
    anonymous = running.client()
    feed = await anonymous.get(link.removeprefix("http://test"))
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")
    cal = Calendar.from_ical(feed.content)
    assert "METHOD" not in cal
    starts = [e.decoded("DTSTART") for e in cal.walk("VEVENT")]
    assert starts == [next_monday(10).astimezone(dt.timezone.utc), next_monday(14).astimezone(dt.timezone.utc)]
    assert (await anonymous.get("/calendar/forged.ics")).status_code == 401


async def test_reschedule_moves_jobs_and_cancel_removes_them(running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    scheduler = running.app.state.jobs.scheduler
    sid = session["id"]
    reminder = scheduler.get_job(f"session-{sid}-remind-86400")
    assert reminder.trigger.due == next_monday(10) - dt.timedelta(days=1)
    assert scheduler.get_job(f"session-{sid}-open").trigger.due == next_monday(9, 50)
    assert scheduler.get_job(f"session-{sid}-close").trigger.due == next_monday(11, 30)
    await staff_client.post(f"/api/sessions/{sid}/reschedule", json={"start": next_monday(14).isoformat()})
    assert scheduler.get_job(f"session-{sid}-remind-900").trigger.due == next_monday(13, 45)
    await staff_client.post(f"/api/sessions/{sid}/cancel", json={"reason": "x"})
    assert [j.id for j in scheduler.get_jobs() if j.id.startswith(f"session-{sid}-")] == []
