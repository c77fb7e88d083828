"""The whole flow through the API: book, end with an agreement, who may sign it, follow-ups."""
from __future__ import annotations

import datetime as dt
import io
from typing import Any

import httpx
import pytest
from itsdangerous import URLSafeSerializer
from pypdf import PdfReader

from tests.conftest import Running, add_staff, log_in, token_of
from tests.scheduling.conftest import booking, next_monday


async def test_an_agreement_who_may_sign_it_and_its_follow_ups(running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    sid = session["id"]
    assert (await staff_client.get(f"/api/sessions/{sid}/outcome")).status_code == 404
    bad = await staff_client.post(f"/api/sessions/{sid}/outcome", json={"kind": "agreement"})
    assert bad.status_code == 422  # an agreement needs its terms
    terms = "一、李秀兰于本周内为宠物狗办理犬证并拴绳出行；二、双方互相道歉，不再追究。"
    recorded = await staff_client.post(f"/api/sessions/{sid}/outcome", json={"kind": "agreement", "summary": "双方和解", "terms": terms})
    assert recorded.status_code == 201, recorded.text
    outcome = recorded.json()
    assert outcome["complete"] is False and [p["name"] for p in outcome["parties"]] == ["张建军", "李秀兰"]
    assert len(outcome["follow_ups"]) == 2
    due = [dt.datetime.fromisoformat(f["due_at"]) - dt.datetime.now(dt.timezone.utc) for f in outcome["follow_ups"]]
    assert round(due[0].total_seconds() / 86400) == 7 and round(due[1].total_seconds() / 86400) == 30
    jobs = {job.id for job in running.app.state.jobs.scheduler.get_jobs()}
    assert {f"follow-up-{f['id']}" for f in outcome["follow_ups"]} <= jobs
    assert (await staff_client.get(f"/api/disputes/{pool['dispute']['id']}")).json()["status"] == "resolved"
    again = await staff_client.post(f"/api/sessions/{sid}/outcome", json={"kind": "no_agreement"})
    assert again.status_code == 409

    # The parties sign from their own links (tests/outcomes/test_signing.py has the details);
    # an expert's link signs only as an expert, a forged or expired link not at all.
    party = running.client()
    first = token_of(session, "party", 0)
    seen = (await party.get(f"/api/join/{first}/agreement")).json()
    assert seen["terms"] == terms
    expert = await party.post(f"/api/join/{token_of(session, 'expert')}/documents/agreement/code")
    assert expert.status_code == 403
    forged = URLSafeSerializer("wrong-secret", salt="tiaojie.invite").dumps({"s": sid, "p": 1, "r": "party", "x": 2**31})
    assert (await party.post(f"/api/join/{forged}/documents/agreement/code")).status_code == 401
    expired = running.app.state.tokens.invite(sid, session["participants"][4]["id"], "party", dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))
    assert (await party.get(f"/api/join/{expired}/documents")).status_code == 410

    # Follow-ups: none overdue yet; a relapse reopens the dispute.
    assert (await staff_client.get("/api/follow-ups?overdue=true")).json() == []
    follow_up = outcome["follow_ups"][0]["id"]
    kept = await staff_client.post(f"/api/follow-ups/{follow_up}", json={"result": "kept", "note": "双方相安无事"})
    assert kept.json()["status"] == "kept"
    assert (await staff_client.get(f"/api/disputes/{pool['dispute']['id']}")).json()["status"] == "followed_up"
    relapse = await staff_client.post(f"/api/follow-ups/{outcome['follow_ups'][1]['id']}", json={"result": "relapsed", "note": "狗又咬人"})
    assert relapse.status_code == 200
    assert (await staff_client.get(f"/api/disputes/{pool['dispute']['id']}")).json()["status"] == "registered"
    assert (await staff_client.post(f"/api/follow-ups/{follow_up}", json={"result": "kept"})).status_code == 409


async def test_failed_and_referred_outcomes(staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    missing = await staff_client.post(f"/api/sessions/{session['id']}/outcome", json={"kind": "referred"})
    assert missing.status_code == 422
    no_reason = await staff_client.post(f"/api/sessions/{session['id']}/outcome", json={"kind": "referred", "referral_to": "court"})
    assert no_reason.status_code == 422 and "referral_reason" in no_reason.json()["error"]
    wrong_kind = await staff_client.post(f"/api/sessions/{session['id']}/outcome", json={
        "kind": "agreement", "terms": "x", "referral_to": "court"})
    assert wrong_kind.status_code == 422
    referred = await staff_client.post(f"/api/sessions/{session['id']}/outcome", json={
        "kind": "referred", "referral_to": "court", "referral_reason": "涉及人身伤害赔偿，建议诉讼"})
    assert referred.status_code == 201 and referred.json()["follow_ups"] == []
    assert (await staff_client.get(f"/api/disputes/{pool['dispute']['id']}")).json()["status"] == "referred"
    assert (await staff_client.post("/api/sessions/9999/outcome", json={"kind": "no_agreement"})).status_code == 404

    # A failed mediation may be passed on too (to the 12345 hotline here), with its reason.
    property_dispute = (await staff_client.post("/api/disputes", json={
        "title": "物业费纠纷", "dispute_type": "property", "parties": [{"name": "黄志明", "side": "applicant"}]})).json()
    other = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(15), dispute_id=property_dispute["id"]))).json()
    failed = await staff_client.post(f"/api/sessions/{other['id']}/outcome", json={
        "kind": "no_agreement", "summary": "双方分歧较大", "referral_to": "hotline_12345", "referral_reason": "涉及物业管理，转 12345 热线"})
    assert failed.status_code == 201 and failed.json()["referral_to"] == "hotline_12345"
    assert (await staff_client.get(f"/api/sessions/{other['id']}/outcome")).json()["referral_reason"] == "涉及物业管理，转 12345 热线"


async def test_printable_agreement_pages(running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    assert (await staff_client.get(f"/sessions/{session['id']}/agreement")).status_code == 404  # no outcome yet
    await staff_client.post(f"/api/sessions/{session['id']}/outcome", json={"kind": "agreement", "terms": "双方互相道歉"})
    page = await staff_client.get(f"/sessions/{session['id']}/agreement")
    assert page.status_code == 200
    for text in ("人民调解协议书", "申请人：张建军", "被申请人：李秀兰", "双方互相道歉", "司法确认", "法制民警", "尚未签名"):
        assert text in page.text
    party_page = await running.client().get(f"/join/{token_of(session, 'party')}/agreement")
    assert party_page.status_code == 200 and "data-pad" not in party_page.text  # identity not checked yet
    assert "待签材料" in party_page.text and "双方互相道歉" in party_page.text
    assert (await running.client().get("/join/garbage/agreement")).status_code == 401


@pytest.mark.pdf
async def test_the_agreement_as_a_pdf(running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    await staff_client.post(f"/api/sessions/{session['id']}/outcome", json={"kind": "agreement", "terms": "双方互相道歉"})
    pdf = await staff_client.get(f"/sessions/{session['id']}/agreement.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF-")
    text = "".join("".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf.content)).pages)
    for expected in ("人民调解协议书", "张建军", "李秀兰", "双方互相道歉", "司法确认", "法制民警"):
        assert expected in text, expected
    party_pdf = await running.client().get(f"/join/{token_of(session, 'party')}/agreement.pdf")
    assert party_pdf.status_code == 200 and party_pdf.content.startswith(b"%PDF-")
    assert (await running.client().get(f"/sessions/{session['id']}/agreement.pdf")).status_code == 401


async def test_agreement_templates_per_dispute_type(running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    templates = {t["dispute_type"]: t for t in (await staff_client.get("/api/agreement-templates")).json()}
    assert len(templates) == 10 and not templates["animals"]["custom"] and "宠物" in templates["animals"]["body"]
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    draft = (await staff_client.get(f"/api/sessions/{session['id']}/agreement-draft")).json()
    assert draft["dispute_type"] == "animals"
    assert "李秀兰于十日内为所养宠物办理登记" in draft["terms"] and "张建军医疗等费用" in draft["terms"]
    assert "{" not in draft["terms"] and "二、" in draft["terms"] and "三、本协议履行完毕后" in draft["terms"]

    own = "一、{被申请人}每日遛狗必须拴绳，并向{申请人}赔礼道歉。\n二、（金额）元于{日期}前付清。"
    # The office's templates are its admin's to change, for this office alone.
    assert (await staff_client.put("/api/agreement-templates/animals", json={"body": own})).status_code == 403
    await add_staff(running, "office-admin", role="admin")
    admin = await log_in(running, "office-admin")
    saved = await admin.put("/api/agreement-templates/animals", json={"body": own})
    assert saved.status_code == 200 and saved.json()["custom"] is True
    await add_staff(running, "elsewhere", office="朝阳警务室")
    other = (await (await log_in(running, "elsewhere")).get("/api/agreement-templates")).json()
    assert next(t for t in other if t["dispute_type"] == "animals")["custom"] is False
    draft = (await staff_client.get(f"/api/sessions/{session['id']}/agreement-draft")).json()
    day = next_monday(10)
    assert draft["terms"] == f"一、李秀兰每日遛狗必须拴绳，并向张建军赔礼道歉。\n二、（金额）元于{day.year}年{day.month}月{day.day}日前付清。"
    # The office's own blanks count too, and a placeholder left in braces.
    left = await staff_client.post(f"/api/sessions/{session['id']}/outcome", json={
        "kind": "agreement", "terms": draft["terms"].replace("遛狗", "遛狗{几次}")})
    assert left.status_code == 422 and left.json()["error"].endswith("（金额）、{几次}")
    assert (await admin.put("/api/agreement-templates/animals", json={"body": ""})).status_code == 422
    assert (await admin.put("/api/agreement-templates/spaceships", json={"body": "x"})).status_code == 404
    reset = await admin.delete("/api/agreement-templates/animals")
    assert reset.json()["custom"] is False and reset.json()["body"] == templates["animals"]["body"]
    assert (await staff_client.get("/api/sessions/9999/agreement-draft")).status_code == 404
