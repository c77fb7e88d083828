"""Statistics against figures worked out by hand from the test data."""
from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import httpx

from accounts.service import create_staff
from experts.models import Office
from scheduling.room_record import write_event
from tests.conftest import STAFF_PASSWORD, Running, log_in
from tests.scheduling.conftest import booking, next_monday


async def test_statistics_match_the_test_data(running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    async with running.app.state.db_sessions() as db, db.begin():
        office = Office(name="梓山湖警务室")
        db.add(office)
        await db.flush()
        await create_staff(db, "zishan", STAFF_PASSWORD, office_id=office.id)
    zishan = await log_in(running, "zishan")  # disputes are registered in their staff member's office
    family = (await zishan.post("/api/disputes", json={
        "title": "老年夫妻家庭矛盾", "dispute_type": "family", "parties": [{"name": "王德福", "side": "applicant"}]})).json()
    first = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    officer = pool["experts"]["legal_officer"][1]
    second = (await staff_client.post("/api/sessions", json={
        "dispute_id": family["id"], "start": next_monday(14).isoformat(), "end": next_monday(15, 30).isoformat(),
        "experts": [{"expert_id": officer["id"]}]})).json()
    await staff_client.post(f"/api/sessions/{first['id']}/outcome", json={"kind": "agreement", "terms": "互相道歉"})
    await staff_client.post(f"/api/sessions/{second['id']}/outcome", json={"kind": "no_agreement", "summary": "分歧较大"})
    party = next(p for p in first["participants"] if p["kind"] == "party")
    async with running.app.state.db_sessions() as db, db.begin():
        await write_event(db, first["id"], {"kind": "join", "peer_id": f"p{party['id']}", "info": {}})

    figures = (await staff_client.get("/api/statistics")).json()
    assert figures["registered"] == 2 and figures["mediated"] == 2 and figures["resolved"] == 1
    assert figures["resolution_rate"] == 0.5
    assert figures["by_type"] == {
        "animals": {"registered": 1, "mediated": 1, "resolved": 1},
        "family": {"registered": 1, "mediated": 1, "resolved": 0},
    }
    assert figures["by_office"] == {
        "": {"registered": 1, "mediated": 1, "resolved": 1},
        "梓山湖警务室": {"registered": 1, "mediated": 1, "resolved": 0},
    }
    # Invited: 3 experts + 2 parties in the first session, 1 expert + 1 party in the second; one joined.
    assert figures["no_show_rate"] == round(6 / 7, 4)
    experts = {e["expert_id"]: e for e in figures["by_expert"]}
    assert experts[officer["id"]] == {"expert_id": officer["id"], "name": officer["name"], "role": "legal_officer",
                                      "sessions": 1, "hours": 1.5, "agreements": 0, "outcomes": {"no_agreement": 1}}
    lawyer = pool["experts"]["lawyer"][0]
    assert experts[lawyer["id"]]["hours"] == 1.0 and experts[lawyer["id"]]["agreements"] == 1
    created = {d["id"]: dt.datetime.fromisoformat(d["created_at"]) for d in (await staff_client.get("/api/disputes")).json()}
    waits = [(next_monday(10) - created[pool["dispute"]["id"]]).total_seconds() / 86400,
             (next_monday(14) - created[family["id"]]).total_seconds() / 86400]
    assert abs(figures["average_days_to_first_session"] - sum(waits) / 2) < 0.01

    exported = await staff_client.get("/api/statistics?format=csv")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert rows[0] == ["measure", "key", "registered", "mediated", "resolved", "value"]
    assert ["resolution_rate", "", "", "", "", "0.5"] in rows
    assert ["by_type", "family", "1", "1", "0", ""] in rows

    page = await staff_client.get("/statistics")
    assert page.status_code == 200
    assert '<dd id="resolution-rate">50.0%</dd>' in page.text and "梓山湖警务室" in page.text and officer["name"] in page.text
    assert (await staff_client.get("/statistics?from=2026-02-01&to=2026-01-01")).status_code == 422

    empty = (await staff_client.get("/api/statistics?from=2020-01-01&to=2020-01-31")).json()
    assert empty["registered"] == 0 and empty["resolution_rate"] is None
    assert (await staff_client.get("/api/statistics?from=2026-02-01&to=2026-01-01")).status_code == 422
    assert (await staff_client.get("/api/statistics?from=soon")).status_code == 422
