"""Links and QR codes: the address a page's request came in on, messages the address for phones, or TIAOJIE_BASE_URL."""
from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from scheduling.outbox import OutboxMessage
from tests.conftest import Running, add_staff, log_in, started
from tests.scheduling.conftest import booking, next_monday


@pytest.fixture
def settings(make_settings: Any) -> Any:
    """No TIAOJIE_BASE_URL; `tiaojie serve` on all addresses printed this one for phones."""
    return make_settings(base_url="", served_url="http://192.168.1.5:8000")


async def test_links_on_pages_use_the_address_people_came_in_on_and_messages_the_one_for_phones(
    running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any],
) -> None:
    booked = await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)), headers={"Host": "evil.example"})
    session = booked.json()
    on_the_office_name = await staff_client.get(f"/api/sessions/{session['id']}", headers={"Host": "tiaojie.office:19100"})
    assert {p["join_url"].split("/join/")[0] for p in on_the_office_name.json()["participants"]} == {"http://tiaojie.office:19100"}
    # From this computer (loopback) a link would open nowhere else: the address for phones instead.
    on_loopback = await staff_client.get(f"/api/sessions/{session['id']}", headers={"Host": "127.0.0.1:8000"})
    assert {p["join_url"].split("/join/")[0] for p in on_loopback.json()["participants"]} == {"http://192.168.1.5:8000"}
    # A message is never addressed by a request's Host header (which anyone can send).
    async with await running.db() as db:
        bodies = [m.body for m in await db.scalars(select(OutboxMessage))]
    assert bodies and all("evil.example" not in body for body in bodies)
    assert any("http://192.168.1.5:8000/join/" in body for body in bodies)


async def test_with_tiaojie_base_url_set_every_link_uses_it(make_settings: Any) -> None:
    async with started(make_settings(base_url="https://tiaojie.example.gov.cn/")) as running:
        await add_staff(running)
        client = await log_in(running)
        expert = (await client.post("/api/experts", json={"name": "王律师", "role": "lawyer", "email": "w@example.cn"})).json()
        link = await client.get(f"/api/experts/{expert['id']}/calendar-link", headers={"Host": "127.0.0.1:8000"})
        assert link.json()["url"].startswith("https://tiaojie.example.gov.cn/calendar/")
