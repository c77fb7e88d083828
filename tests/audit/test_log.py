"""The audit log: every change with who, when, before and after; admins read it; nobody edits it."""
from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from scheduling import room_record
from tests.conftest import Running, add_staff, expert_client, log_in
from tests.scheduling.conftest import booking, next_monday


async def audit(admin: httpx.AsyncClient, **query: Any) -> list[dict[str, Any]]:
    response = await admin.get("/api/audit", params=query)
    assert response.status_code == 200, response.text
    return response.json()


async def test_changes_are_logged_with_actor_before_and_after(
    running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any]
) -> None:
    await add_staff(running, "chief", role="admin")
    admin = await log_in(running, "chief")
    dispute = pool["dispute"]
    assert (await staff_client.patch(f"/api/disputes/{dispute['id']}", json={"risk_level": "urgent"})).status_code == 200

    rows = await audit(admin, entity="disputes", entity_id=dispute["id"])
    assert [r["action"] for r in rows] == ["update", "create"]
    update, create = rows
    assert update["actor"].startswith("staff:") and update["actor_name"] == "staff1"
    assert update["before"]["risk_level"] == "high" and update["after"]["risk_level"] == "urgent"
    assert "title" not in update["after"]  # only what changed
    assert create["before"] is None and create["after"]["title"] == "宠物狗纠纷"
    parties = await audit(admin, entity="parties")
    assert sorted(r["after"]["name"] for r in parties) == ["张建军", "李秀兰"]

    # An expert changing their own availability is logged as that expert.
    expert = pool["experts"]["lawyer"][0]
    own = await expert_client(running, expert["id"])
    week = {"windows": [{"weekday": 0, "start": "09:00", "end": "12:00"}]}
    assert (await own.put(f"/api/experts/{expert['id']}/availability", json=week)).status_code == 200
    windows = await audit(admin, entity="weekly_windows", actor=f"expert:{expert['id']}")
    assert {r["action"] for r in windows} == {"create", "delete"}
    assert any(r["after"] and r["after"]["start"] == "09:00:00" for r in windows), windows
    assert windows[0]["actor_name"] == expert["name"]

    # Sessions, participants and outcomes.
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    assert await audit(admin, entity="mediation_sessions", entity_id=session["id"])
    outcome = await staff_client.post(f"/api/sessions/{session['id']}/outcome", json={"kind": "agreement", "terms": "互相道歉"})
    assert outcome.status_code == 201
    logged = await audit(admin, entity="outcomes")
    assert logged[0]["after"]["kind"] == "agreement" and logged[0]["actor"].startswith("staff:")
    # The host's identity check and signature are logged as the host's participant; an image
    # only by its size, and a full identity number (kept where the office asks) never.
    from tests.outcomes.test_signing import drawing
    assert (await admin.put("/api/office/signing", json={"court": "某法院", "full_id_numbers": True})).status_code == 200
    host = next(p for p in session["participants"] if p["kind"] == "host")
    party = next(p for p in session["participants"] if p["kind"] == "party")
    token = host["join_url"].rsplit("/", 1)[1]
    checked = await running.client().post(f"/api/join/{token}/identity/{party['id']}",
                                          json={"document_type": "resident_id", "number": "430902199001011234"})
    assert checked.status_code == 200
    check = (await audit(admin, entity="identity_checks"))[0]
    assert check["actor"] == f"participant:{host['id']}" and check["after"]["full_number"] == "(hidden)"
    assert "430902199001011234" not in str(await audit(admin, limit=200))
    sha = (await running.client().get(f"/api/join/{token}/documents")).json()["documents"]["agreement"]["text_sha256"]
    signed = await running.client().post(f"/api/join/{token}/documents/agreement/sign", json={"text_sha256": sha, "signature": drawing()})
    assert signed.status_code == 201, signed.text
    signature = (await audit(admin, entity="signatures"))[0]
    assert signature["actor"] == f"participant:{host['id']}" and signature["actor_name"] == host["display_name"]
    assert signature["after"]["image_png"].endswith("bytes)")

    # Paging backwards and the date filter.
    first_page = await audit(admin, limit=3)
    second_page = await audit(admin, limit=3, before_id=first_page[-1]["id"])
    assert len(first_page) == 3 and second_page[0]["id"] < first_page[-1]["id"]
    assert await audit(admin, to="2020-01-01") == []
    assert (await admin.get("/api/audit", params={"from": "yesterday"})).status_code == 422


async def test_room_moderation_is_logged_as_the_host(
    running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any]
) -> None:
    await add_staff(running, "chief", role="admin")
    admin = await log_in(running, "chief")
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    host = next(p for p in session["participants"] if p["kind"] == "host")
    party = next(p for p in session["participants"] if p["kind"] == "party")
    async with running.app.state.db_sessions() as db, db.begin():
        await room_record.write_event(db, session["id"], {"kind": "chat", "peer_id": f"p{party['id']}", "text": "你好"})
        await room_record.write_event(db, session["id"], {"kind": "remove", "peer_id": f"p{party['id']}", "by": f"p{host['id']}", "revoke": True})
    removal = await audit(admin, entity="mediation_sessions", entity_id=session["id"])
    assert removal[0]["action"] == "room.remove"
    assert removal[0]["actor"] == f"participant:{host['id']}" and removal[0]["after"]["target"] == party["id"]
    assert not any(r["action"] == "room.chat" for r in removal)  # chat is in the room record, not moderation
    revoked = (await audit(admin, entity="participants", entity_id=party["id"]))[0]
    assert revoked["actor"] == f"participant:{host['id']}" and revoked["after"]["status"] == "removed"


async def test_only_admins_read_and_nobody_edits(running: Running, staff_client: httpx.AsyncClient) -> None:
    await add_staff(running, "chief", role="admin")
    admin = await log_in(running, "chief")
    assert (await staff_client.get("/api/audit")).status_code == 403
    assert (await running.client().get("/api/audit")).status_code == 401
    created = await staff_client.post("/api/disputes", json={"title": "噪音扰民", "dispute_type": "neighbour", "risk_level": "low"})
    assert created.status_code == 201
    entry = (await audit(admin, entity="disputes"))[0]
    assert (await admin.get(f"/api/audit/{entry['id']}")).json() == entry
    assert (await admin.get("/api/audit/999999")).status_code == 404
    for method in ("PUT", "PATCH", "DELETE"):
        response = await admin.request(method, f"/api/audit/{entry['id']}", json={"actor": "system"})
        assert response.status_code == 405

    async with running.app.state.db_sessions() as db:
        for statement in ("UPDATE audit_log SET actor = 'system' WHERE id = :id", "DELETE FROM audit_log WHERE id = :id"):
            with pytest.raises(DBAPIError, match="append-only"):
                async with db.begin():
                    await db.execute(text(statement), {"id": entry["id"]})
    assert (await admin.get(f"/api/audit/{entry['id']}")).json() == entry


async def test_audit_page_for_admins(running: Running, staff_client: httpx.AsyncClient) -> None:
    await add_staff(running, "chief", role="admin")
    admin = await log_in(running, "chief")
    await staff_client.post("/api/disputes", json={"title": "噪音扰民", "dispute_type": "neighbour", "risk_level": "low"})
    page = await admin.get("/audit?entity=disputes")
    assert page.status_code == 200 and "噪音扰民" in page.text and "staff1" in page.text and "新建" in page.text
    assert (await admin.get("/audit?entity_id=x")).status_code == 422
    assert (await staff_client.get("/audit")).status_code == 403
    assert (await running.client().get("/audit")).status_code == 303


async def test_a_flush_that_fails_half_way_logs_nothing_of_it(running: Running) -> None:
    from sqlalchemy import func, select
    from sqlalchemy.exc import IntegrityError

    from audit.models import AuditEntry
    from disputes.models import Dispute, Party

    async def logged() -> list[str]:
        async with await running.db() as db:
            return list(await db.scalars(select(AuditEntry.after["title"].as_string()).where(AuditEntry.entity == "disputes")))

    async with await running.db() as db:
        before = await db.scalar(select(func.count()).select_from(AuditEntry))
        # The dispute is inserted (and its audit row made ready) before the party's foreign key fails.
        db.add(Dispute(title="半途失败", dispute_type="neighbour"))
        db.add(Party(dispute_id=999_999, name="无此纠纷", side="applicant"))
        with pytest.raises(IntegrityError):
            await db.flush()
        await db.rollback()
        db.add(Dispute(title="之后成功", dispute_type="neighbour"))
        await db.commit()
        assert await db.scalar(select(func.count()).select_from(AuditEntry)) == before + 1
    assert "半途失败" not in await logged() and "之后成功" in await logged()
