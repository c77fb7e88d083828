"""Signing an agreement through the API: the record, identity checked by the host, one-time
codes through the outbox, drawn signatures, the seal, the signed PDF (pyHanko), the verification
page, a change of the text voiding every signature, the judicial application and its deadline."""
from __future__ import annotations

import asyncio
import datetime as dt
import io
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw
from sqlalchemy import select

from outcomes import pades
from outcomes.models import OfficeSigning, Signature, SigningCode
from scheduling.outbox import OutboxMessage
from tests.conftest import Running, token_of
from tests.scheduling.conftest import booking, next_monday


def drawing(width: int = 600, height: int = 240, strokes: int = 3) -> str:
    """A signature as the pad sends it: a PNG data URL with a few pen strokes."""
    import base64

    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    for n in range(strokes):
        pen.line([(40 + n * 150, 60), (120 + n * 150, 180), (170 + n * 150, 70)], fill=(20, 20, 60, 255), width=5)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def seal_png() -> bytes:
    image = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((10, 10, 290, 290), outline=(200, 20, 20, 255), width=12)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


async def agreement(staff: httpx.AsyncClient, pool: dict[str, Any]) -> dict[str, Any]:
    """A session on a dispute whose parties have phones, ended with an agreement."""
    dispute = (await staff.post("/api/disputes", json={
        "title": "楼上漏水纠纷", "dispute_type": "neighbour",
        "parties": [{"name": "周建华", "side": "applicant", "phone": "13907370101"},
                    {"name": "吴美玲", "side": "respondent", "phone": "13907370102"}],
    })).json()
    session = (await staff.post("/api/sessions", json=booking(pool, next_monday(10), dispute_id=dispute["id"]))).json()
    saved = await staff.put(f"/api/sessions/{session['id']}/record", json={"text": "双方陈述了漏水经过。", "revision": 0})
    assert saved.status_code == 200, saved.text
    recorded = await staff.post(f"/api/sessions/{session['id']}/outcome", json={
        "kind": "agreement", "terms": "一、吴美玲于十日内重做卫生间防水。\n二、吴美玲赔偿周建华1500元。"})
    assert recorded.status_code == 201, recorded.text
    return session


async def shown_code(running: Running, participant_id: int) -> str:
    async with running.app.state.db_sessions() as db:
        row = await db.scalar(select(SigningCode).where(SigningCode.participant_id == participant_id)
                              .order_by(SigningCode.id.desc()).limit(1))
    assert row is not None and row.shown_code
    return row.shown_code


async def sign_as_party(app: Any, client: httpx.AsyncClient, staff: httpx.AsyncClient, session_id: int, token: str,
                        participant_id: int) -> dict[str, Any]:
    """A party signs the agreement as on the phone: identity checked by staff, the code, a drawing."""
    checked = await staff.post(f"/api/sessions/{session_id}/participants/{participant_id}/identity",
                               json={"document_type": "resident_id", "number": "430902199001015678"})
    assert checked.status_code == 200, checked.text
    assert (await client.post(f"/api/join/{token}/documents/agreement/code")).status_code == 201
    async with app.state.db_sessions() as db:
        code = await db.scalar(select(SigningCode.shown_code).where(SigningCode.participant_id == participant_id)
                               .order_by(SigningCode.id.desc()).limit(1))
    sha = (await client.get(f"/api/join/{token}/documents")).json()["documents"]["agreement"]["text_sha256"]
    signed = await client.post(f"/api/join/{token}/documents/agreement/sign",
                               json={"text_sha256": sha, "signature": drawing(), "code": code})
    assert signed.status_code == 201, signed.text
    return signed.json()


@pytest.mark.pdf
async def test_parties_sign_on_their_links_and_the_seal_issues_a_pdf_anyone_can_verify(
    running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any], tmp_path: Any,
) -> None:
    session = await agreement(staff_client, pool)
    sid = session["id"]
    parties = [p for p in session["participants"] if p["kind"] == "party"]
    first, second = token_of(session, "party", 0), token_of(session, "party", 1)
    phone = running.client()
    papers = (await phone.get(f"/api/join/{first}/documents")).json()["documents"]["agreement"]
    assert "吴美玲赔偿周建华1500元" in papers["text"] and "双方陈述了漏水经过。" in papers["text"]
    sha = papers["text_sha256"]
    sign = f"/api/join/{first}/documents/agreement/sign"

    # Identity first: without the host's check there is no signing.
    refused = await phone.post(sign, json={"text_sha256": sha, "signature": drawing(), "code": "000000"})
    assert refused.status_code == 409 and "核验" in (await phone.post(sign, json={
        "text_sha256": sha, "signature": drawing(), "code": "000000"})).json()["message"]
    host = token_of(session, "host")
    assert (await phone.post(f"/api/join/{first}/identity/{parties[1]['id']}", json={
        "document_type": "resident_id", "number": "430902199001011234"})).status_code == 403  # a party is not the host
    checked = await phone.post(f"/api/join/{host}/identity/{parties[0]['id']}", json={
        "document_type": "resident_id", "number": "430902199001011234"})
    assert checked.status_code == 200 and checked.json()["number_last4"] == "1234" and "full_number" not in checked.json()
    assert (await staff_client.post(f"/api/sessions/{sid}/participants/{parties[1]['id']}/identity", json={
        "document_type": "passport", "number": "E1234"})).status_code == 200

    # The code goes through the outbox to the phone on the dispute; without a gateway staff see it.
    sent = await phone.post(f"/api/join/{first}/documents/agreement/code")
    assert sent.status_code == 201 and sent.json()["sent_to"] == "139****0101" and sent.json()["shown_to_staff"]
    again = await phone.post(f"/api/join/{first}/documents/agreement/code")
    assert again.status_code == 429  # a new code only after a minute
    code = await shown_code(running, parties[0]["id"])
    async with running.app.state.db_sessions() as db:
        sms = await db.scalar(select(OutboxMessage).where(OutboxMessage.kind == "signing_code"))
    assert sms is not None and sms.recipient == "13907370101" and code in sms.body
    page = await staff_client.get(f"/sessions/{sid}")
    assert code in page.text and "未配置短信网关" in page.text

    wrong = "000000" if code != "000000" else "111111"
    bad = await phone.post(sign, json={"text_sha256": sha, "signature": drawing(), "code": wrong})
    assert bad.status_code == 422 and "还可以再试 4 次" in bad.json()["message"]
    empty = await phone.post(sign, json={"text_sha256": sha, "signature": drawing(strokes=0), "code": code})
    assert empty.status_code == 422 and empty.json()["field"] == "signature"
    tiny = await phone.post(sign, json={"text_sha256": sha, "signature": drawing(40, 20, 1), "code": code})
    assert tiny.status_code == 422
    stale = await phone.post(sign, json={"text_sha256": "0" * 64, "signature": drawing(), "code": code})
    assert stale.status_code == 409
    # The two parties sign at the same moment: both count; then the host signs as the mediator.
    await phone.post(f"/api/join/{second}/documents/agreement/code")
    code2 = await shown_code(running, parties[1]["id"])
    both = await asyncio.gather(
        phone.post(sign, json={"text_sha256": sha, "signature": drawing(), "code": code}, headers={"user-agent": "TestPhone/1.0"}),
        phone.post(f"/api/join/{second}/documents/agreement/sign", json={"text_sha256": sha, "signature": drawing(), "code": code2}),
    )
    assert [r.status_code for r in both] == [201, 201], [r.text for r in both]
    assert (await phone.post(sign, json={"text_sha256": sha, "signature": drawing(), "code": code})).status_code == 422  # spent
    host_link = (await staff_client.get(f"/sessions/{sid}")).text.split('id="host-signing" href="')[1].split('"')[0]
    host_token = host_link.split("/join/")[1].split("/")[0]
    mediator = await phone.post(f"/api/join/{host_token}/documents/agreement/sign", json={"text_sha256": sha, "signature": drawing()})
    assert mediator.status_code == 201, mediator.text
    async with running.app.state.db_sessions() as db:
        stored = list(await db.scalars(select(Signature).order_by(Signature.id)))
    assert sorted(s.capacity for s in stored) == ["mediator", "party", "party"]
    party_signature = next(s for s in stored if s.participant_id == parties[0]["id"])
    assert party_signature.user_agent == "TestPhone/1.0" and party_signature.phone_masked == "139****0101"
    assert party_signature.identity["number_last4"] == "1234" and party_signature.text_sha256 == sha

    # The seal: not before the office has one; a bad image is refused.
    seal = f"/api/join/{host_token}/documents/agreement/seal"
    assert (await phone.post(seal)).status_code == 409
    assert (await phone.post(f"/api/join/{first}/documents/agreement/seal")).status_code == 403
    not_image = await staff_client.put("/api/office/seal", content=b"%PDF-1.4 not an image")
    assert not_image.status_code == 403  # a clerk is not the office admin
    from tests.conftest import add_staff, log_in
    await add_staff(running, "office-admin", role="admin")
    admin = await log_in(running, "office-admin")
    assert (await admin.put("/api/office/seal", content=b"%PDF-1.4 not an image")).status_code == 422
    assert (await admin.put("/api/office/seal", content=b"\x89PNG" + b"0" * 2_000_000)).status_code == 422
    assert (await admin.put("/api/office/seal", content=seal_png())).status_code == 200
    assert (await admin.get("/office/seal.png")).headers["content-type"] == "image/png"
    sealed = await phone.post(seal)
    assert sealed.status_code == 201, sealed.text
    assert (await phone.post(seal)).status_code == 409  # once

    # The PDF: the signed file as issued, valid for pyHanko, and a one-byte change breaks it.
    pdf = (await phone.get(f"/join/{first}/documents/agreement.pdf")).content
    async with running.app.state.db_sessions() as db:
        certs = [c for c in await db.scalars(select(OfficeSigning.cert_pem))]
    verdict = await pades.verify(pdf, certs)
    assert verdict.valid and verdict.whole_file, verdict
    changed = bytearray(pdf)
    changed[len(pdf) // 3] ^= 0x01
    assert not (await pades.verify(bytes(changed), certs)).valid
    from pypdf import PdfReader
    text = "".join("".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf)).pages)
    for expected in ("人民调解协议书", "签署记录", sha[:16], "周建华", "尾号1234"):
        assert expected in text, expected
    code_of = sealed.json()["code"]
    verify = await running.client().get(f"/verify/{code_of}")
    assert verify.status_code == 200 and 'data-status="valid"' in verify.text and "周建华" not in verify.text
    upload = (await running.client().post("/api/verify", content=pdf)).json()
    assert upload["signature"] == "intact" and upload["status"] == "valid"
    tampered = (await running.client().post("/api/verify", content=bytes(changed))).json()
    assert tampered["signature"] in ("tampered", "unsigned") and not tampered["found"]
    assert (await running.client().post("/api/verify", content=b"hello")).status_code == 422

    # `tiaojie verify FILE` says the same from the command line.
    path = tmp_path / "signed.pdf"
    path.write_bytes(pdf)
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(bytes(changed))
    env = {"TIAOJIE_DATABASE_URL": running.app.state.settings.database_url, "PATH": "/usr/bin:/bin"}
    good = subprocess.run([str(Path(sys.executable).parent / "tiaojie"), "verify", str(path)], capture_output=True, text=True, env=env)
    assert good.returncode == 0 and "valid" in good.stdout, good.stdout + good.stderr
    bad_run = subprocess.run([str(Path(sys.executable).parent / "tiaojie"), "verify", str(broken)], capture_output=True, text=True, env=env)
    assert bad_run.returncode == 1, bad_run.stdout

    # The judicial application: the deadline, the parties sign it the same way, the package.
    view = (await staff_client.get(f"/api/sessions/{sid}/outcome")).json()
    assert view["complete"] and view["judicial_deadline"]
    deadline = dt.datetime.fromisoformat(view["judicial_deadline"]) - dt.datetime.now(dt.timezone.utc)
    assert 29 < deadline.total_seconds() / 86400 <= 30
    assert "申请司法确认截止" in (await staff_client.get(f"/disputes/{session['dispute_id']}")).text
    jobs = {job.id for job in running.app.state.jobs.scheduler.get_jobs()}
    assert f"judicial-{view['id']}" in jobs
    assert (await staff_client.post(f"/api/sessions/{sid}/application")).status_code == 409  # no court set
    assert (await admin.put("/api/office/signing", json={"court": "益阳高新技术产业开发区人民法院"})).status_code == 200
    assert (await staff_client.post(f"/api/sessions/{sid}/application")).status_code == 201
    application = (await phone.get(f"/api/join/{first}/documents")).json()["documents"]["application"]
    assert "益阳高新技术产业开发区人民法院" in application["text"]
    assert (await phone.post(f"/api/join/{host_token}/documents/application/sign", json={
        "text_sha256": application["text_sha256"], "signature": drawing()})).status_code == 403  # only the parties
    for token, party in ((first, parties[0]), (second, parties[1])):
        async with running.app.state.db_sessions() as db, db.begin():  # the minute between codes has passed
            for row in await db.scalars(select(SigningCode).where(SigningCode.participant_id == party["id"])):
                row.sent_at -= dt.timedelta(minutes=2)
        assert (await phone.post(f"/api/join/{token}/documents/application/code")).status_code == 201
        done = await phone.post(f"/api/join/{token}/documents/application/sign", json={
            "text_sha256": application["text_sha256"], "signature": drawing(),
            "code": await shown_code(running, party["id"])})
        assert done.status_code == 201, done.text
    assert (await phone.post(f"/api/join/{host_token}/documents/application/seal")).status_code == 201
    package = await staff_client.get(f"/sessions/{sid}/judicial-package.zip")
    assert package.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(package.content)).namelist()
    assert names == ["人民调解协议书.pdf", "司法确认申请书.pdf", "证据清单.csv"]

    # A change of the text after signing voids every signature, lifts the seal, tells each signer,
    # and the issued PDF's page now says superseded.
    amended = await staff_client.patch(f"/api/sessions/{sid}/outcome", json={"terms": "一、吴美玲赔偿周建华2000元。"})
    assert amended.status_code == 200, amended.text
    host_name = next(p["display_name"] for p in session["participants"] if p["kind"] == "host")
    # The agreement's three signers and the application's two parties.
    assert sorted(amended.json()["voided"]) == sorted(["周建华", "吴美玲", host_name, "周建华", "吴美玲"])
    after = amended.json()["documents"]["agreement"]
    assert not after["complete"] and not any(p["signed_at"] for p in after["signers"])
    assert all(p["voided"] for p in after["signers"] if p["kind"] in ("party", "host"))
    assert 'data-status="superseded"' in (await running.client().get(f"/verify/{code_of}")).text
    async with running.app.state.db_sessions() as db:
        told = list(await db.scalars(select(OutboxMessage).where(OutboxMessage.kind == "signature_void")))
    assert {m.recipient for m in told} >= {"13907370101", "13907370102"}
    # Nothing already signed is lost: the void signatures are kept.
    async with running.app.state.db_sessions() as db:
        assert len(list(await db.scalars(select(Signature)))) == 5


async def test_the_record_is_the_host_sides_and_two_writers_do_not_overwrite_each_other(
    running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any],
) -> None:
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    host, party = token_of(session, "host"), token_of(session, "party")
    client = running.client()
    assert (await client.put(f"/api/join/{party}/record", json={"text": "x", "revision": 0})).status_code == 403
    first = await client.put(f"/api/join/{host}/record", json={"text": "主持人介绍调解规则。", "revision": 0})
    assert first.status_code == 200 and first.json()["revision"] == 1
    stale = await staff_client.put(f"/api/sessions/{session['id']}/record", json={"text": "书记员的版本", "revision": 0})
    assert stale.status_code == 409
    read = (await client.get(f"/api/join/{host}/record")).json()
    assert read["text"] == "主持人介绍调解规则。" and read["revision"] == 1
    assert (await client.put(f"/api/join/{host}/record", json={"text": "x" * 50_001, "revision": 1})).status_code == 422


async def test_code_rules_expiry_tries_and_a_new_code_after_a_minute(
    running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any],
) -> None:
    from outcomes import signing
    from outcomes.models import SignDocument
    from scheduling.models import MediationSession, Participant

    session = await agreement(staff_client, pool)
    party_id = next(p["id"] for p in session["participants"] if p["kind"] == "party")
    now = dt.datetime.now(dt.timezone.utc)
    async with running.app.state.db_sessions() as db, db.begin():
        room = await db.get(MediationSession, session["id"])
        party = await db.get(Participant, party_id)
        doc = await db.scalar(select(SignDocument))
        assert room is not None and party is not None and doc is not None
        await signing.send_code(db, room, doc, party, secret="s", office_name="o", title="t", shown=True, now=now)
        row = await db.scalar(select(SigningCode))
        assert row is not None and len(row.shown_code) == 6 and row.shown_code.isdigit()
        assert row.code_hash != row.shown_code and (row.expires_at - now) == dt.timedelta(minutes=10)
        late = await signing._use_code(db, doc, party, row.shown_code, "s", now + dt.timedelta(minutes=10, seconds=1))
        assert late is not None and "expired" in late.text()
        for _ in range(5):
            assert await signing._use_code(db, doc, party, "999999" if row.shown_code != "999999" else "888888", "s", now) is not None
        await db.refresh(row)
        assert row.tries == 5
        spent = await signing._use_code(db, doc, party, row.shown_code, "s", now)
        assert spent is not None and "too many" in spent.text()  # the right code no longer helps
        with pytest.raises(Exception, match="new code can be sent"):
            await signing.send_code(db, room, doc, party, secret="s", office_name="o", title="t", shown=True,
                                    now=now + dt.timedelta(seconds=30))
        await signing.send_code(db, room, doc, party, secret="s", office_name="o", title="t", shown=True,
                                now=now + dt.timedelta(seconds=61))
        fresh = await db.scalar(select(SigningCode).order_by(SigningCode.id.desc()).limit(1))
        assert fresh is not None and await signing._use_code(db, doc, party, fresh.shown_code, "s", now + dt.timedelta(seconds=62)) is None


async def test_the_deadline_reminder_is_sent_once_however_many_nodes_run_it(
    running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any],
) -> None:
    from outcomes import jobs
    from outcomes.models import Outcome, SignDocument

    session = await agreement(staff_client, pool)
    async with running.app.state.db_sessions() as db, db.begin():
        outcome = await db.scalar(select(Outcome).where(Outcome.session_id == session["id"]))
        doc = await db.scalar(select(SignDocument).where(SignDocument.outcome_id == outcome.id))  # type: ignore[union-attr]
        assert outcome is not None and doc is not None
        doc.sealed_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=23)
    for _node in range(2):  # the job as two nodes would each run it (the app's job context)
        async with running.app.state.db_sessions() as db, db.begin():
            await jobs.judicial_reminder(db, outcome.id)
    async with running.app.state.db_sessions() as db:
        sent = list(await db.scalars(select(OutboxMessage).where(OutboxMessage.kind == "judicial_deadline")))
    recipients = [m.recipient for m in sent]
    assert len(recipients) == len(set(recipients)) and {"13907370101", "13907370102"} <= set(recipients)
    assert "司法确认" in sent[0].body


async def test_editing_the_dispute_voids_its_signed_agreement_at_once_and_tells_the_signer(
    running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any],
) -> None:
    session = await agreement(staff_client, pool)
    party = next(p for p in session["participants"] if p["kind"] == "party")
    await sign_as_party(running.app, running.client(), staff_client, session["id"], token_of(session, "party", 0), party["id"])
    edited = await staff_client.patch(f"/api/disputes/{session['dispute_id']}", json={"cause": "楼上卫生间防水层老化。"})
    assert edited.status_code == 200, edited.text
    async with running.app.state.db_sessions() as db:
        told = list(await db.scalars(select(OutboxMessage).where(OutboxMessage.kind == "signature_void")))
    assert [m.recipient for m in told] == ["13907370101"] and "已作废" in told[0].body
    view = (await staff_client.get(f"/api/sessions/{session['id']}/outcome")).json()
    assert view["documents"]["agreement"]["version"] == 2 and not view["parties"][0]["signed_at"]
