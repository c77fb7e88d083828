"""Personal join links: scope, expiry, revocation, and experts accepting or declining."""
from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from foundation.errors import Forbidden, Gone, Unauthorized
from scheduling import invites
from tests.conftest import Running, token_of
from tests.scheduling.conftest import booking, next_monday


async def test_each_link_opens_its_own_seat_only(running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    first = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    second = (await staff_client.post("/api/sessions", json={
        **booking(pool, next_monday(14)), "experts": [{"expert_id": pool["experts"]["lawyer"][1]["id"]}]})).json()
    visitor = running.client()
    party = (await visitor.get(f"/api/join/{token_of(first, 'party')}")).json()
    assert party["you"]["kind"] == "party" and party["you"]["display_name"] == "张建军"
    assert [p["role"] for p in party["panel"]] == ["legal_officer", "lawyer", "governance_specialist"]
    assert party["session"]["dispute_title"] == "宠物狗纠纷"
    # A party cannot accept or decline as an expert.
    assert (await visitor.post(f"/api/join/{token_of(first, 'party')}/decline")).status_code == 403
    async with running.app.state.db_sessions() as db:
        with pytest.raises(Forbidden):
            await invites.open_invite(db, running.app.state.tokens, token_of(first, "expert"), session_id=second["id"])
        session, participant = await invites.open_invite(db, running.app.state.tokens, token_of(second, "expert"), session_id=second["id"])
        assert participant.expert_id == pool["experts"]["lawyer"][1]["id"]


async def test_role_in_token_cannot_be_changed(running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any], settings: Any) -> None:
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    party = next(p for p in session["participants"] if p["kind"] == "party")
    forged = running.app.state.tokens.invite(session["id"], party["id"], "host", next_monday(12))
    assert (await running.client().get(f"/api/join/{forged}")).status_code == 403
    tampered = token_of(session, "party")[:-2] + "xx"
    assert (await running.client().get(f"/api/join/{tampered}")).status_code == 401


async def test_link_expires_after_end_plus_grace(running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any], settings: Any) -> None:
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    token = token_of(session, "party")
    end = dt.datetime.fromisoformat(session["end"])
    async with running.app.state.db_sessions() as db:
        opened, _ = await invites.open_invite(db, running.app.state.tokens, token, now=end + dt.timedelta(seconds=settings.invite_grace_s - 1))
        assert opened.id == session["id"]
        with pytest.raises(Gone):
            await invites.open_invite(db, running.app.state.tokens, token, now=end + dt.timedelta(seconds=settings.invite_grace_s))
        with pytest.raises(Unauthorized):
            await invites.open_invite(db, running.app.state.tokens, "garbage")


async def test_revoke_and_reissue(running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    party = next(p for p in session["participants"] if p["kind"] == "party")
    old = token_of(session, "party")
    revoked = await staff_client.post(f"/api/sessions/{session['id']}/revoke", json={"participant_id": party["id"]})
    assert revoked.status_code == 200
    assert (await running.client().get(f"/api/join/{old}")).status_code == 403
    reissued = (await staff_client.post(f"/api/sessions/{session['id']}/reissue", json={"participant_id": party["id"]})).json()
    new = token_of(reissued, "party")
    assert new != old
    assert (await running.client().get(f"/api/join/{new}")).status_code == 200
    assert (await running.client().get(f"/api/join/{old}")).status_code == 403
    missing = await staff_client.post(f"/api/sessions/{session['id']}/revoke", json={"participant_id": 9999})
    assert missing.status_code == 404


async def test_cancelled_session_links_are_gone(running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    await staff_client.post(f"/api/sessions/{session['id']}/cancel", json={"reason": "改期"})
    assert (await running.client().get(f"/api/join/{token_of(session, 'party')}")).status_code == 410


async def test_pending_until_every_expert_accepts(running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10), require_confirmation=True))).json()
    assert session["status"] == "pending"
    # A pending booking already holds the experts' time.
    assert (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10, 30)))).status_code == 409
    visitor = running.client()
    for n in range(3):
        response = await visitor.post(f"/api/join/{token_of(session, 'expert', n)}/accept")
        assert response.status_code == 200
        assert response.json()["session"]["status"] == ("confirmed" if n == 2 else "pending")


async def test_decline_offers_replacements(running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10), require_confirmation=True))).json()
    lawyer_token = next(p for p in session["participants"] if p["role"] == "lawyer")["join_url"].rsplit("/", 1)[1]
    declined = await running.client().post(f"/api/join/{lawyer_token}/decline")
    assert declined.status_code == 200
    assert declined.json()["you"]["status"] == "declined"
    assert [r["id"] for r in declined.json()["replacements"]] == [pool["experts"]["lawyer"][1]["id"]]
    # The declined expert's time is free again.
    solo = {**booking(pool, next_monday(10)), "experts": [{"expert_id": pool["experts"]["lawyer"][0]["id"]}]}
    assert (await staff_client.post("/api/sessions", json=solo)).status_code == 201


async def test_the_office_sees_where_a_session_really_stands_and_declines_on_the_dashboard(
    running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any],
) -> None:
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10), require_confirmation=True))).json()
    assert session["standing"] == "awaiting_experts"
    page = await staff_client.get(f"/sessions/{session['id']}")
    assert "待专家确认" in page.text
    lawyer = next(p for p in session["participants"] if p["role"] == "lawyer")
    await running.client().post(f"/api/join/{lawyer['join_url'].rsplit('/', 1)[1]}/decline")
    assert (await staff_client.get(f"/api/sessions/{session['id']}")).json()["standing"] == "expert_declined"
    assert "有专家拒绝" in (await staff_client.get(f"/sessions/{session['id']}")).text
    dashboard = (await staff_client.get("/")).text
    assert "有专家拒绝的调解（1）" in dashboard and f"{lawyer['display_name']} 已婉拒" in dashboard
    assert f'href="/sessions/{session["id"]}#participants">替换专家' in dashboard

    replaced = await staff_client.post(f"/api/sessions/{session['id']}/replace", json={
        "participant_id": lawyer["id"], "expert_id": pool["experts"]["lawyer"][1]["id"]})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["standing"] == "awaiting_experts"
    assert "有专家拒绝的调解" not in (await staff_client.get("/")).text



def test_an_invite_signed_again_is_the_same_token_without_signing_again() -> None:
    import datetime as dt

    from foundation.tokens import TokenSigner

    tokens = TokenSigner("test-secret")
    until = dt.datetime(2026, 12, 7, 12, tzinfo=dt.timezone.utc)
    first = tokens.invite(7, 41, "party", until)
    assert tokens.invite(7, 41, "party", until) is first  # remembered (a booking shows each link thrice)
    assert TokenSigner("test-secret").invite(7, 41, "party", until) == first  # and what signing gives
    assert tokens.invite(7, 41, "party", until, version=2) != first  # a new link version is a new token
    invite = tokens.read_invite(first, until - dt.timedelta(hours=1))
    assert (invite.session_id, invite.participant_id, invite.role, invite.version) == (7, 41, "party", 1)
