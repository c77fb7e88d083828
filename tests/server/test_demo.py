"""The demo data: its history adds up in the statistics, the follow-ups and the weekly reviews."""
from __future__ import annotations

import datetime as dt

from server.demo import DISPUTES, load_demo
from server.demo_history import CASES, SECOND_OFFICE
from tests.conftest import Running, log_in

SH = dt.timezone(dt.timedelta(hours=8))


async def test_demo_history_adds_up(running: Running) -> None:
    now = dt.datetime.now(SH)
    today = now.date()
    async with running.app.state.db_sessions() as db, db.begin():
        password = await load_demo(db, now=now)
    assert password is not None
    staff_client = await log_in(running, "supervisor", password)  # over both offices
    span = {"from": (today - dt.timedelta(days=60)).isoformat(), "to": today.isoformat()}
    figures = (await staff_client.get("/api/statistics", params=span)).json()

    agreements = [c for c in CASES if c["kind"] == "agreement"]
    assert figures["registered"] == len(DISPUTES) + len(CASES)
    assert (figures["mediated"], figures["resolved"]) == (len(CASES), len(agreements))
    assert figures["resolution_rate"] == round(len(agreements) / len(CASES), 4)
    invited = sum(len(c["panel"]) + len(c["parties"]) for c in CASES)
    absent = sum(len(c.get("absent", [])) for c in CASES)
    assert figures["no_show_rate"] == round(absent / invited, 4)
    second = [c for c in CASES if c.get("office") == SECOND_OFFICE]
    assert figures["by_office"][SECOND_OFFICE] == {
        "registered": len(second), "mediated": len(second), "resolved": sum(c["kind"] == "agreement" for c in second)}
    assert sum(e["sessions"] for e in figures["by_expert"]) == sum(len(c["panel"]) for c in CASES)

    # Follow-ups: one visit per agreement and day count; what the cases say was done is done.
    follow_ups = (await staff_client.get("/api/follow-ups")).json()
    assert len(follow_ups) == 2 * len(agreements)
    done = sum(len([r for r in c.get("follow_ups", []) if r]) for c in agreements)
    assert len([f for f in follow_ups if f["status"] != "pending"]) == done
    reviews = (await staff_client.get("/api/reviews")).json()
    assert len(reviews) == 6 * 2 and sum(r["sessions_held"] for r in reviews) == sum(
        1 for c in CASES if c["session"] > today.weekday())  # sessions before this week
    relapsed = next(c for c in CASES if "relapsed" in c.get("follow_ups", []))
    disputes = {d["title"]: d for d in (await staff_client.get("/api/disputes")).json()}
    assert disputes[relapsed["title"]]["status"] == "registered"
    page = await staff_client.get(f"/reviews/{reviews[0]['id']}")
    assert page.status_code == 200 and "每周研判" in page.text
    overdue = [f for f in follow_ups if f["overdue"]]
    home = await staff_client.get("/")
    assert f"逾期未回访：{len(overdue)} 件" in home.text and all(f["title"] in home.text for f in overdue)


async def test_demo_has_a_session_whose_room_opens_now(running: Running) -> None:
    now = dt.datetime.now(SH)
    async with running.app.state.db_sessions() as db, db.begin():
        password = await load_demo(db, now=now)
    staff_client = await log_in(running, "jinshan", password)
    # (Its day: just before midnight, the session about to start is tomorrow's, maybe next week's.)
    days = {now.date(), (now + dt.timedelta(minutes=10)).date()}
    listed = [s for day in days for s in (await staff_client.get("/api/schedule", params={"date": day.isoformat()})).json()["sessions"]]
    soon = [s for s in listed if 0 < (dt.datetime.fromisoformat(s["start"]) - now).total_seconds() <= 10 * 60]
    assert soon, "a newcomer finds a session about to start"
    session = (await staff_client.get(f"/api/sessions/{soon[0]['session_id']}")).json()
    host_link = next(p["join_url"] for p in session["participants"] if p["kind"] == "host")
    info = (await staff_client.get(f"/api/join/{host_link.rsplit('/', 1)[1]}")).json()
    assert info["room"]["open"] is True, info
