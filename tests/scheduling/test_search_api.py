"""Slot search through the API, on experts and bookings loaded from the database."""
from __future__ import annotations

import datetime as dt
from typing import Any

import httpx

from tests.scheduling.conftest import booking, next_monday


async def test_search_finds_panel_and_skips_booked_time(staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    window = {"window_start": next_monday(8).isoformat(), "window_end": next_monday(12).isoformat(), "limit": 3}
    slots = (await staff_client.post("/api/scheduling/search", json={"dispute_id": pool["dispute"]["id"], **window})).json()
    assert [s["start"] for s in slots] == [next_monday(h, m).astimezone(dt.timezone.utc).isoformat() for h, m in ((8, 0), (8, 30), (9, 0))]
    first = slots[0]
    assert [seat["role"] for seat in first["seats"]] == ["legal_officer", "lawyer", "governance_specialist"]
    # Priority 10 before 11: the first expert of each role, the second as alternate.
    assert [seat["expert"]["id"] for seat in first["seats"]] == [pool["experts"][r][0]["id"] for r in ("legal_officer", "lawyer", "governance_specialist")]
    assert [seat["alternates"][0]["id"] for seat in first["seats"]] == [pool["experts"][r][1]["id"] for r in ("legal_officer", "lawyer", "governance_specialist")]

    # Both lawyers busy 08:00-10:00: the first slot with a lawyer free (after the gap) is 10:15 -> 10:30 on the grid.
    for lawyer in pool["experts"]["lawyer"]:
        body = {**booking(pool, next_monday(8), minutes=120), "experts": [{"expert_id": lawyer["id"]}]}
        assert (await staff_client.post("/api/sessions", json=body)).status_code == 201
    slots = (await staff_client.post("/api/scheduling/search", json={"dispute_id": pool["dispute"]["id"], **window})).json()
    assert slots[0]["start"] == next_monday(10, 30).astimezone(dt.timezone.utc).isoformat()

    parties_busy = {**window, "window_end": next_monday(14).isoformat(), "party_busy": [{"start": next_monday(10).isoformat(), "end": next_monday(11, 30).isoformat()}]}
    slots = (await staff_client.post("/api/scheduling/search", json={"dispute_id": pool["dispute"]["id"], **parties_busy})).json()
    assert slots[0]["start"] == next_monday(11, 30).astimezone(dt.timezone.utc).isoformat()


async def test_search_with_pinned_and_optional_seats(staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    pinned = pool["experts"]["lawyer"][1]["id"]
    panel = {"seats": [{"role": "lawyer", "expert_id": pinned}, {"role": "counsellor", "optional": True}]}
    body = {"panel": panel, "window_start": next_monday(8).isoformat(), "window_end": next_monday(10).isoformat(), "limit": 1}
    slots = (await staff_client.post("/api/scheduling/search", json=body)).json()
    assert slots[0]["seats"][0]["expert"]["id"] == pinned
    assert slots[0]["seats"][1]["expert"] is None and slots[0]["seats"][1]["optional"]


async def test_search_bad_input(staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    bad = [
        ({"dispute_id": 999}, 404),
        ({"panel": {"seats": []}}, 422),
        ({"panel": {"seats": [{"role": "wizard"}]}}, 422),
        ({"panel": {"seats": [{"role": "lawyer", "expert_id": 1, "count": 2}]}}, 422),
        ({"duration_min": 5}, 422),
        ({"window_start": next_monday(10).isoformat(), "window_end": next_monday(9).isoformat()}, 422),
        ({"party_busy": [{"start": next_monday(10).isoformat(), "end": next_monday(9).isoformat()}]}, 422),
    ]
    for body, status in bad:
        response = await staff_client.post("/api/scheduling/search", json=body)
        assert response.status_code == status, (body, response.text)
