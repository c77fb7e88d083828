"""Statistics against figures worked out by hand from the test data."""
from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import httpx
from openpyxl import load_workbook
from sqlalchemy import update

from accounts.service import create_staff
from experts.models import ExpertOffice, Office
from scheduling.room_record import write_event
from tests.conftest import STAFF_PASSWORD, Running, log_in
from tests.scheduling.conftest import booking, next_monday


async def test_statistics_match_the_test_data(running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    officer = pool["experts"]["legal_officer"][1]
    async with running.app.state.db_sessions() as db, db.begin():
        district = Office(name="高新分局", kind="level")
        db.add(district)
        await db.flush()
        office = Office(name="梓山湖警务室", parent_id=district.id)
        db.add(office)
        await db.flush()
        await db.execute(update(Office).where(Office.id != district.id).values(parent_id=district.id))
        db.add(ExpertOffice(expert_id=officer["id"], office_id=office.id))  # the pool is shared
        await create_staff(db, "zishan", STAFF_PASSWORD, office_id=office.id)
        await create_staff(db, "du", STAFF_PASSWORD, role="supervisor", office_id=district.id)
    zishan = await log_in(running, "zishan")  # disputes are registered in their staff member's office
    family = (await zishan.post("/api/disputes", json={
        "title": "老年夫妻家庭矛盾", "dispute_type": "family", "risk_level": "high",
        "parties": [{"name": "王德福", "side": "applicant"}]})).json()
    first = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    second = (await zishan.post("/api/sessions", json={
        "dispute_id": family["id"], "start": next_monday(14).isoformat(), "end": next_monday(15, 30).isoformat(),
        "experts": [{"expert_id": officer["id"]}]})).json()
    await staff_client.post(f"/api/sessions/{first['id']}/outcome", json={"kind": "agreement", "terms": "互相道歉"})
    await zishan.post(f"/api/sessions/{second['id']}/outcome", json={"kind": "no_agreement", "summary": "分歧较大"})
    party = next(p for p in first["participants"] if p["kind"] == "party")
    async with running.app.state.db_sessions() as db, db.begin():
        await write_event(db, first["id"], {"kind": "join", "peer_id": f"p{party['id']}", "info": {}})

    # Each office counts its own cases; the supervisor over both sees both, side by side.
    own = (await staff_client.get("/api/statistics")).json()
    assert (own["registered"], own["mediated"], own["resolved"]) == (1, 1, 1) and "梓山湖警务室" not in own["by_office"]
    assert [o["office"] for o in own["offices"]] == ["测试警务室"]
    staff_client = await log_in(running, "du")
    figures = (await staff_client.get("/api/statistics")).json()
    offices = {o["office"]: o for o in figures["offices"]}
    assert offices["梓山湖警务室"] == {
        "office_id": office.id, "office": "梓山湖警务室", "registered": 1, "by_type": {"family": 1}, "by_risk": {"high": 1},
        "sessions": 0, "outcomes": 1, "agreements": 0, "success_rate": 0.0, "average_days_to_agreement": None,
        "follow_ups_overdue": 0}
    assert offices["测试警务室"]["agreements"] == 1 and offices["测试警务室"]["success_rate"] == 1.0
    assert offices["测试警务室"]["average_days_to_agreement"] is not None
    sheet = await staff_client.get("/api/statistics?format=xlsx")
    assert sheet.status_code == 200 and sheet.headers["content-type"].startswith("application/vnd.openxmlformats")
    book = load_workbook(io.BytesIO(sheet.content))
    rows = [[c.value for c in row] for row in book["各单位对比"].iter_rows(min_row=3)]
    assert sorted(r[0] for r in rows) == ["梓山湖警务室", "测试警务室"] and [r[4] for r in rows if r[0] == "测试警务室"] == [1]
    assert [c.value for c in book["风险等级"][1]] == ["风险等级", *(o["office"] for o in figures["offices"])]
    assert figures["registered"] == 2 and figures["mediated"] == 2 and figures["resolved"] == 1
    assert figures["resolution_rate"] == 0.5
    assert figures["by_type"] == {
        "animals": {"registered": 1, "mediated": 1, "resolved": 1},
        "family": {"registered": 1, "mediated": 1, "resolved": 0},
    }
    assert figures["by_office"] == {
        "测试警务室": {"registered": 1, "mediated": 1, "resolved": 1},
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
    assert 'id="office-chart"' in page.text and "各单位对比" in page.text and 'format=xlsx' in page.text
    assert (await staff_client.get("/statistics?from=2026-02-01&to=2026-01-01")).status_code == 422

    empty = (await staff_client.get("/api/statistics?from=2020-01-01&to=2020-01-31")).json()
    assert empty["registered"] == 0 and empty["resolution_rate"] is None
    assert (await staff_client.get("/api/statistics?from=2026-02-01&to=2026-01-01")).status_code == 422
    assert (await staff_client.get("/api/statistics?from=soon")).status_code == 422
