"""The whole flow through the API on a real server: register, give evidence, book, meet in the
room, end, record an agreement, both parties confirm, follow-ups planned, the weekly review and
the statistics count it (figures worked out by hand below), the audit log keeps it all."""
from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from foundation.config import Settings
from foundation.database import utcnow
from scheduling.outbox import OutboxMessage
from tests.conftest import Live, book, token_of
from tests.outcomes.test_signing import sign_as_party
from tests.signaling.test_forwarding import wait_until
from tests.signaling.test_ws import admit, join

SH = dt.timezone(dt.timedelta(hours=8))
JPEG = b"\xff\xd8\xff\xe0" + b"receipt" * 100


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(evidence_max_bytes=2048)


async def test_register_to_statistics(live: Live, settings: Settings) -> None:
    staff = live.staff
    # 1. Register a wage dispute with its elements and both parties.
    dispute = (await staff.post("/api/disputes", json={
        "title": "装修工程欠薪纠纷", "dispute_type": "labour", "risk_level": "high", "place": "金山社区3栋",
        "cause": "工程完工后包工头未结清工资", "scale": 6, "nature": "劳资纠纷",
        "parties": [{"name": "刘国庆", "side": "applicant", "phone": "13807370001"},
                    {"name": "陈包工", "side": "respondent", "phone": "13807370002"}],
    })).json()
    experts = [(await staff.post("/api/experts", json={"name": name, "role": role, "email": f"{role}@flow.cn"})).json()["id"]
               for name, role in (("李法制", "legal_officer"), ("周律师", "lawyer"), ("吴专干", "governance_specialist"))]

    # 2. Book the panel (the room opens at once: the session starts in five minutes).
    start = utcnow() + dt.timedelta(minutes=5)
    session = await book(staff, start, experts, dispute["id"])
    assert (await staff.get(f"/api/disputes/{dispute['id']}")).json()["status"] == "scheduled"
    applicant, respondent = token_of(session, "party", 0), token_of(session, "party", 1)

    # 3. Evidence before the session: accepted, or refused with nothing kept.
    evidence_dir = Path(settings.data_dir) / "evidence"
    assert (await staff.post(f"/api/join/{applicant}/evidence?name=工资条.jpg", content=JPEG)).status_code == 201
    too_big = await staff.post(f"/api/join/{applicant}/evidence?name=录像.mp4", content=b"\x00\x00\x00\x18ftypmp42" + b"v" * 4096)
    assert too_big.status_code == 413 and "limit" in too_big.json()["error"]
    script = await staff.post(f"/api/join/{respondent}/evidence?name=欠条.html", content=b"<script>alert(1)</script>")
    assert script.status_code == 415
    assert len([p for p in evidence_dir.rglob("*") if p.is_file()]) == 1
    assert len((await staff.get(f"/api/disputes/{dispute['id']}/evidence")).json()) == 1

    # 4. The host and both parties meet in the room; the host admits them, then ends the session.
    host = await join(live, 0, token_of(session, "host"), session["id"])
    guests = [await join(live, n + 1, token, session["id"]) for n, token in enumerate((applicant, respondent))]
    await admit(host, *guests)
    await host.socket.send(json.dumps({"type": "moderate", "action": "end"}))
    await wait_until(lambda: all(any(m["type"] == "ended" for m in c.messages) for c in (host, *guests)), 5)
    for client in (host, *guests):
        await client.close()
    ended = (await staff.get(f"/api/sessions/{session['id']}")).json()
    assert ended["status"] == "ended"
    late = await staff.post(f"/api/join/{applicant}/evidence?name=补充.jpg", content=JPEG)
    assert late.status_code == 409 and "office" in late.json()["error"]

    # 5. The host records the agreement, starting from the labour template.
    draft = (await staff.get(f"/api/sessions/{session['id']}/agreement-draft")).json()["terms"]
    assert "陈包工于（日期）前一次性向刘国庆支付拖欠工资" in draft
    # Recorded with its blanks unfilled, it would be sent to both parties as it is: refused, naming them.
    half = draft.replace("（日期）", "2026年12月10日")
    refused = await staff.post(f"/api/sessions/{session['id']}/outcome", json={"kind": "agreement", "terms": half})
    assert refused.status_code == 422 and refused.json()["field"] == "terms"
    assert refused.json()["error"].endswith("（金额）、（银行转账/现金）")
    terms = half.replace("（金额）", "18600").replace("（银行转账/现金）", "银行转账")
    outcome = (await staff.post(f"/api/sessions/{session['id']}/outcome", json={
        "kind": "agreement", "summary": "法制民警讲解法律责任，律师分析证据，双方达成还款协议。", "terms": terms})).json()
    assert outcome["complete"] is False and len(outcome["follow_ups"]) == 2
    # Each party is sent a link to confirm that outlives the session's invite link (two weeks).
    async with live.app.state.db_sessions() as db:
        asks = list(await db.scalars(select(OutboxMessage).where(OutboxMessage.kind == "agreement").order_by(OutboxMessage.id)))
    assert [m.recipient for m in asks if m.recipient.startswith("138073700")] == ["13807370001", "13807370002"]
    assert "18600" in asks[0].body and "待签材料" in asks[0].body
    link = re.search(r"http://test/join/(\S+)/agreement", asks[0].body).group(1)
    invite = live.app.state.tokens.read_invite(link, utcnow() + dt.timedelta(days=13))
    assert invite.session_id == session["id"]

    # 6. Both parties sign from their own links (identity, code, drawing); a wrong or expired link is refused.
    expired = live.app.state.tokens.invite(session["id"], outcome["parties"][0]["participant_id"], "party",
                                    dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))
    assert (await staff.post(f"/api/join/{expired}/documents/agreement/code")).status_code == 410
    assert (await staff.post(f"/api/join/{applicant[:-3]}xyz/documents/agreement/code")).status_code == 401
    for token, party in ((applicant, outcome["parties"][0]), (respondent, outcome["parties"][1])):
        await sign_as_party(live.app, staff, staff, session["id"], token, party["participant_id"])
    done = (await staff.get(f"/api/sessions/{session['id']}/outcome")).json()
    assert all(p["signed_at"] for p in done["parties"]) and done["complete"] is False  # the mediator and the seal are next
    assert (await staff.get(f"/api/disputes/{dispute['id']}")).json()["status"] == "resolved"

    # 7. Follow-up jobs exist, 7 and 30 days on.
    jobs = {job.id: job for job in live.app.state.jobs.scheduler.get_jobs()}
    for follow_up, days in zip(outcome["follow_ups"], (7, 30)):
        job = jobs[f"follow-up-{follow_up['id']}"]
        assert abs((job.next_run_time - utcnow()).total_seconds() - days * 86400) < 600

    # 8. The weekly review of this week counts it.
    today = utcnow().astimezone(SH).date()
    review = (await staff.post("/api/reviews", json={"week_of": today.isoformat()})).json()
    assert dispute["id"] in [d["dispute_id"] for d in review["new_disputes"]["items"]]
    assert review["new_disputes"]["by_type"]["labour"] == 1
    # (The session's week: booked just before Sunday midnight, it is held in the next one.)
    held_on = start.astimezone(SH).date()
    if held_on - dt.timedelta(days=held_on.weekday()) != today - dt.timedelta(days=today.weekday()):
        review = (await staff.post("/api/reviews", json={"week_of": held_on.isoformat()})).json()
    held = [s for s in review["sessions"]["items"] if s["session_id"] == session["id"]]
    assert held and held[0]["outcome"] == "agreement"

    # 9. Statistics by hand. Registered today: the fixture's pet dispute and this one (2).
    # Mediated (an outcome recorded): this one (1), resolved 1, rate 1.0. Invited parties and
    # experts of the mediated session: 2 parties + 3 experts = 5; joined: the 2 parties; so the
    # no-show rate is 3/5. Each expert: 1 session, 1 hour, 1 agreement.
    figures = (await staff.get("/api/statistics", params={"from": today.isoformat(), "to": today.isoformat()})).json()
    assert (figures["registered"], figures["mediated"], figures["resolved"]) == (2, 1, 1)
    assert figures["resolution_rate"] == 1.0 and figures["no_show_rate"] == 0.6
    assert figures["by_type"] == {"animals": {"registered": 1, "mediated": 0, "resolved": 0},
                                  "labour": {"registered": 1, "mediated": 1, "resolved": 1}}
    assert sorted((e["name"], e["sessions"], e["hours"], e["agreements"]) for e in figures["by_expert"]) == [
        ("吴专干", 1, 1.0, 1), ("周律师", 1, 1.0, 1), ("李法制", 1, 1.0, 1)]
    disputes = {d["id"]: d for d in (await staff.get("/api/disputes")).json()}
    fixture_dispute = live.session["dispute_id"]
    waits = [dt.datetime.fromisoformat(live.session["start"]) - dt.datetime.fromisoformat(disputes[fixture_dispute]["created_at"]),
             start - dt.datetime.fromisoformat(disputes[dispute["id"]]["created_at"])]
    expected_days = sum(w.total_seconds() for w in waits) / 2 / 86400
    assert abs(figures["average_days_to_first_session"] - expected_days) < 0.01

    # 10. The audit log has the story, and refuses to be rewritten.
    async with live.app.state.db_sessions() as db:
        actions = [tuple(row) for row in await db.execute(text(
            "SELECT entity, action FROM audit_log WHERE entity IN ('disputes', 'outcomes', 'signatures', 'evidence')"
            " AND (entity_id = :d OR entity != 'disputes') ORDER BY id"), {"d": dispute["id"]})]
        assert ("disputes", "create") in actions and ("outcomes", "create") in actions
        assert actions.count(("signatures", "create")) == 2 and ("evidence", "create") in actions
        ended_by = await db.scalar(text("SELECT actor FROM audit_log WHERE action = 'room.end'"))
        assert ended_by == f"participant:{next(p['id'] for p in session['participants'] if p['kind'] == 'host')}"
    async with live.app.state.db_sessions() as db:
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.begin():
                await db.execute(text("UPDATE audit_log SET after = NULL WHERE entity = 'outcomes'"))
