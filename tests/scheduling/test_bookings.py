"""Bookings through the real app: race-free, reschedule, cancel, replace, confirmation."""
from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx

from tests.conftest import Running, add_staff, log_in
from tests.scheduling.conftest import booking, next_monday
from tests.scheduling.test_notify import outbox_settled


async def test_book_creates_participants_links_and_moves_dispute(staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    response = await staff_client.post("/api/sessions", json=booking(pool, next_monday(10), onsite_names=["张建军", "李秀兰"]))
    assert response.status_code == 201, response.text
    session = response.json()
    kinds = [p["kind"] for p in session["participants"]]
    assert kinds == ["host", "expert", "expert", "expert", "party", "party", "onsite"]
    assert all(p["join_url"].startswith("http://test/join/") for p in session["participants"])
    assert len({p["join_url"] for p in session["participants"]}) == 7
    assert session["status"] == "confirmed"
    # Nobody has answered yet: every seat shows "invited" until its expert accepts.
    assert {p["status"] for p in session["participants"] if p["kind"] != "host"} == {"invited"}
    dispute = (await staff_client.get(f"/api/disputes/{pool['dispute']['id']}")).json()
    assert dispute["status"] == "scheduled"


async def test_fifty_concurrent_bookings_of_one_expert_exactly_one_wins(running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    await add_staff(running, "staff2")
    other = await log_in(running, "staff2")
    lawyer = pool["experts"]["lawyer"][0]["id"]
    base = next_monday(9)
    bodies = [
        {"dispute_id": pool["dispute"]["id"], "start": (base + dt.timedelta(minutes=n)).isoformat(),
         "end": (base + dt.timedelta(minutes=n + 60)).isoformat(), "experts": [{"expert_id": lawyer}]}
        for n in range(50)
    ]
    clients = [staff_client, other]
    responses = await asyncio.gather(*(clients[n % 2].post("/api/sessions", json=body) for n, body in enumerate(bodies)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1, statuses
    assert statuses.count(409) == 49, statuses
    for response in responses:
        if response.status_code == 409:
            assert "already has a session" in response.json()["error"]


async def test_overlap_refused_but_adjacent_after_gap_allowed(staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    assert (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).status_code == 201
    clash = await staff_client.post("/api/sessions", json=booking(pool, next_monday(10, 30)))
    assert clash.status_code == 409 and clash.json()["field"] == "experts"
    too_close = await staff_client.post("/api/sessions", json=booking(pool, next_monday(11, 5)))
    assert too_close.status_code == 409  # inside the 15-minute gap
    after_gap = await staff_client.post("/api/sessions", json=booking(pool, next_monday(11, 15)))
    assert after_gap.status_code == 201, after_gap.text


async def test_outside_availability_needs_override(staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    night = next_monday(22)
    refused = await staff_client.post("/api/sessions", json=booking(pool, night))
    assert refused.status_code == 409 and "not available" in refused.json()["error"]
    forced = await staff_client.post("/api/sessions", json=booking(pool, night, override_availability=True))
    assert forced.status_code == 201


async def test_a_booking_reads_availability_only_when_it_checks_it(
    running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any],
) -> None:
    from sqlalchemy import event

    statements: list[str] = []
    engine = running.app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, sql, *_: statements.append(sql))
    checked = await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))
    assert checked.status_code == 201, checked.text
    read = [s for s in statements if s.startswith("SELECT") and ("weekly_windows" in s or "date_overrides" in s)]
    assert len(read) == 2  # each expert's weekly windows and date overrides, in one query each
    statements.clear()
    forced = await staff_client.post("/api/sessions", json=booking(pool, next_monday(22), override_availability=True))
    assert forced.status_code == 201, forced.text
    assert not [s for s in statements if "weekly_windows" in s or "date_overrides" in s]


async def test_bad_bookings(staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    body = booking(pool, next_monday(10))
    assert (await staff_client.post("/api/sessions", json={**body, "end": body["start"]})).status_code == 422
    assert (await staff_client.post("/api/sessions", json={**body, "dispute_id": 999})).status_code == 404
    missing = await staff_client.post("/api/sessions", json={**body, "experts": [{"expert_id": 999}]})
    assert missing.status_code == 404 and missing.json()["field"] == "experts"
    twice = {**body, "experts": [body["experts"][0], body["experts"][0]]}
    assert (await staff_client.post("/api/sessions", json=twice)).status_code == 422
    naive = {**body, "start": "2026-12-01T10:00:00", "end": "2026-12-01T11:00:00"}
    assert (await staff_client.post("/api/sessions", json=naive)).status_code == 422


async def test_reschedule_keeps_panel_and_raises_sequence(staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    first = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    blocker = {**booking(pool, next_monday(15)), "experts": [{"expert_id": pool["experts"]["lawyer"][0]["id"]}]}
    assert (await staff_client.post("/api/sessions", json=blocker)).status_code == 201
    refused = await staff_client.post(f"/api/sessions/{first['id']}/reschedule", json={"start": next_monday(15, 30).isoformat()})
    assert refused.status_code == 409 and pool["experts"]["lawyer"][0]["name"] in refused.json()["error"]
    moved = await staff_client.post(f"/api/sessions/{first['id']}/reschedule", json={"start": next_monday(13).isoformat()})
    assert moved.status_code == 200
    data = moved.json()
    assert data["start"] == next_monday(13).astimezone(dt.timezone.utc).isoformat()
    assert data["end"] == next_monday(14).astimezone(dt.timezone.utc).isoformat()
    assert data["sequence"] == 1
    assert [p["expert_id"] for p in data["participants"] if p["kind"] == "expert"] == [p["expert_id"] for p in first["participants"] if p["kind"] == "expert"]
    # Moving onto its own old time is fine (it does not collide with itself).
    back = await staff_client.post(f"/api/sessions/{first['id']}/reschedule", json={"start": next_monday(13, 30).isoformat()})
    assert back.status_code == 200 and back.json()["sequence"] == 2


async def test_cancel_frees_the_experts_and_reopens_the_dispute(staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    assert (await staff_client.post(f"/api/sessions/{session['id']}/cancel", json={})).status_code == 422
    cancelled = await staff_client.post(f"/api/sessions/{session['id']}/cancel", json={"reason": "当事人生病"})
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["cancel_reason"] == "当事人生病"
    assert (await staff_client.get(f"/api/disputes/{pool['dispute']['id']}")).json()["status"] == "registered"
    again = await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))
    assert again.status_code == 201
    twice = await staff_client.post(f"/api/sessions/{session['id']}/cancel", json={"reason": "x"})
    assert twice.status_code == 409


async def test_replace_offers_free_alternates_then_swaps(staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    lawyer_seat = next(p for p in session["participants"] if p["role"] == "lawyer")
    options = await staff_client.post(f"/api/sessions/{session['id']}/replace", json={"participant_id": lawyer_seat["id"]})
    assert [o["id"] for o in options.json()["alternates"]] == [pool["experts"]["lawyer"][1]["id"]]
    # The alternate gets busy elsewhere: no one is offered, and naming them is refused.
    busy = {**booking(pool, next_monday(10)), "experts": [{"expert_id": pool["experts"]["lawyer"][1]["id"]}]}
    assert (await staff_client.post("/api/sessions", json=busy)).status_code == 201
    none = await staff_client.post(f"/api/sessions/{session['id']}/replace", json={"participant_id": lawyer_seat["id"]})
    assert none.json()["alternates"] == []
    refused = await staff_client.post(f"/api/sessions/{session['id']}/replace",
                                      json={"participant_id": lawyer_seat["id"], "expert_id": pool["experts"]["lawyer"][1]["id"]})
    assert refused.status_code == 409


async def test_replace_swaps_seat_and_revokes_old_link(staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    lawyer_seat = next(p for p in session["participants"] if p["role"] == "lawyer")
    new_id = pool["experts"]["lawyer"][1]["id"]
    swapped = await staff_client.post(f"/api/sessions/{session['id']}/replace", json={"participant_id": lawyer_seat["id"], "expert_id": new_id})
    assert swapped.status_code == 200, swapped.text
    people = swapped.json()["participants"]
    old = next(p for p in people if p["id"] == lawyer_seat["id"])
    assert old["status"] == "replaced" and old["revoked"]
    new = next(p for p in people if p["expert_id"] == new_id)
    assert new["seat"] == lawyer_seat["seat"] and new["status"] == "invited"
    token = lawyer_seat["join_url"].rsplit("/", 1)[1]
    assert (await staff_client.get(f"/api/join/{token}")).status_code == 403
    # The replaced expert's time is free again.
    solo = {**booking(pool, next_monday(10)), "experts": [{"expert_id": lawyer_seat["expert_id"]}]}
    assert (await staff_client.post("/api/sessions", json=solo)).status_code == 201


async def test_without_smtp_mail_is_logged_and_the_page_says_so(
    staff_client: httpx.AsyncClient, pool: dict[str, Any], caplog: Any
) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="scheduling.outbox")
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    rows = await outbox_settled(staff_client, 5)
    mails = [r for r in rows if r["channel"] == "email"]
    assert mails and {(r["status"], r["reason"]) for r in mails} == {("recorded", "no_smtp")}
    assert "zhang@example.cn" in caplog.text and "远程调解邀请" in caplog.text  # the mail is in the log
    page = (await staff_client.get(f"/sessions/{session['id']}")).text
    assert "已记录，未发送" in page and "未配置邮件服务器" in page
    assert "发送失败" not in page and "待确认" not in page
    assert page.count("已接受") == 1  # the host; no expert has answered yet: 已邀请
    assert "已邀请" in page
