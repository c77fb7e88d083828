"""The whole signing chain in real Chromium, as people do it: the host writes the record in the
room and marks both parties' identity as checked; the office admin uploads the seal and sees it;
a party on a phone (390x844, DPR 3) reads the documents to the end, asks for a code (shown on the
staff session page, there being no SMS gateway), draws a signature with pointer events (an empty
pad refused, 重写 clears it); the host signs as mediator and applies the seal; the PDF is valid
for pyHanko; the verification page, opened on the phone, says valid, and a changed file fails."""
from __future__ import annotations

import io
from typing import Any

from playwright.async_api import Browser, Page
from sqlalchemy import select

from disputes.models import Party
from outcomes import pades
from outcomes.models import OfficeSigning
from tests.conftest import Live, Running, add_staff
from tests.outcomes.test_signing import seal_png, sign_as_party
from tests.web.browser import DESKTOP_PAGE, PHONE_PAGE, enter_room, until
from tests.web.conftest import ARTIFACTS, staff_page


async def draw(page: Page, selector: str, strokes: int = 3) -> None:
    """Write on the signature pad: pointer down, moves, up (what a finger does); the page shows
    how far the pen went."""
    pad = page.locator(selector)
    await pad.scroll_into_view_if_needed()
    box = None
    while box != (box := await pad.bounding_box()):  # until any scrolling has settled
        await page.wait_for_timeout(100)
    assert box is not None
    for n in range(strokes):
        x0 = box["x"] + box["width"] * (0.1 + 0.28 * n)
        await page.mouse.move(x0, box["y"] + box["height"] * 0.3)
        await page.mouse.down()
        for step in range(1, 9):
            await page.mouse.move(x0 + step * box["width"] * 0.025, box["y"] + box["height"] * (0.3 + 0.05 * (step % 4)))
        await page.mouse.up()
    assert int(await pad.get_attribute("data-travelled") or 0) > 100


async def test_record_identity_code_signature_seal_pdf_and_verification_through_the_pages(
    browser: Browser, live: Live, tmp_path: Any,
) -> None:
    async with live.app.state.db_sessions() as db, db.begin():
        for n, party in enumerate(await db.scalars(select(Party).order_by(Party.id))):
            party.phone = f"1390737010{n + 1}"
    session_id = live.session["id"]
    parties = [p for p in live.session["participants"] if p["kind"] == "party"]

    # 1. In the room the host writes the record (autosaved) and checks both parties' identity.
    host = await enter_room(browser, f"{live.base}/join/{live.token('host')}", DESKTOP_PAGE)
    await host.wait_for_selector("#record-pane #record-text", state="visible")
    await host.fill("#record-text", "主持人宣布调解纪律。张建军陈述被狗咬伤经过，李秀兰表示愿意赔偿。")
    await host.wait_for_selector("#record-status:has-text('已保存')", timeout=15_000)
    await host.wait_for_selector("#record-entries li:has-text('进入调解室')", timeout=15_000)
    for party, number in zip(parties, ("430902199001011234", "E98765432")):
        await host.select_option("#identity-party", str(party["id"]))
        await host.select_option("#identity-type", "resident_id" if number[0] == "4" else "passport")
        await host.fill("#identity-number", number)
        await host.click("#identity-form button[type=submit]")
        await host.wait_for_selector(f"#identity-list li[data-participant='{party['id']}']:has-text('已核验身份')")
    await host.reload()  # kept through a reload
    await host.click("#enter")
    await until(host, "document.getElementById('record-text').value.includes('李秀兰表示愿意赔偿')")
    await host.screenshot(path=str(ARTIFACTS / "room-record-pane.png"))
    await host.context.close()

    # 2. The session ends in an agreement; the office admin uploads the seal and sees it.
    recorded = await live.staff.post(f"/api/sessions/{session_id}/outcome", json={
        "kind": "agreement", "terms": "一、李秀兰赔偿张建军医疗费800元，于十日内付清。\n二、李秀兰遛狗拴绳。"})
    assert recorded.status_code == 201, recorded.text
    await add_staff(Running(app=live.app, clients=[]), "office-admin", role="admin")
    admin = await staff_page(browser, live.base, "office-admin")
    await admin.goto(f"{live.base}/office/signing")
    seal = tmp_path / "seal.png"
    seal.write_bytes(seal_png())
    not_image = tmp_path / "seal.txt"
    not_image.write_text("not an image")
    await admin.set_input_files("#seal-file", str(not_image))
    await admin.wait_for_selector("#seal-status:has-text('PNG 或 JPEG')")
    await admin.set_input_files("#seal-file", str(seal))
    await until(admin, "(() => { const i = document.getElementById('seal-preview'); return !i.hidden && i.naturalWidth === 300; })()")
    await admin.close()

    # 3. The first party signs on their phone.
    phone_context = await browser.new_context(locale="zh-CN", **PHONE_PAGE)
    phone = await phone_context.new_page()
    token = live.token("party", 0)
    await phone.goto(f"{live.base}/join/{token}/agreement")
    agreement = phone.locator("#doc-agreement")
    assert "主持人宣布调解纪律" in await agreement.locator("[data-text]").inner_text()
    assert await agreement.locator("[data-form]").is_hidden()  # not before reading to the end
    await agreement.locator("[data-end]").scroll_into_view_if_needed()
    await agreement.locator("[data-form]").wait_for(state="visible")
    assert "尾号 1234" in await agreement.inner_text()
    await agreement.locator("[data-send-code]").click()
    await agreement.locator("[data-code-status]:has-text('139****0101')").wait_for()
    staff = await staff_page(browser, live.base)
    await staff.goto(f"{live.base}/sessions/{session_id}")
    code = (await staff.inner_text(f"li[data-participant='{parties[0]['id']}'] [data-code] strong")).strip()
    assert len(code) == 6 and "未配置短信网关" in await staff.inner_text("#signing")
    await agreement.locator("[data-code]").fill(code)
    await agreement.locator("[data-submit]").click()  # nothing drawn
    await agreement.locator("[data-error]:has-text('签名太小或为空')").wait_for()
    await draw(phone, "#doc-agreement [data-pad]")
    await agreement.locator("[data-clear]").click()  # 重写
    await agreement.locator("[data-submit]").click()
    await agreement.locator("[data-error]:has-text('签名太小或为空')").wait_for()
    await draw(phone, "#doc-agreement [data-pad]")
    await phone.screenshot(path=str(ARTIFACTS / "phone-signature.png"))
    await agreement.locator("[data-submit]").click()
    await phone.locator("#doc-agreement [data-done]:has-text('您已于')").wait_for(timeout=15_000)

    # 4. The second party signs too (through the API, as the phone does); the host signs and seals.
    await sign_as_party(live.app, live.staff, live.staff, session_id, live.token("party", 1), parties[1]["id"])
    await staff.reload()
    await staff.click("#host-signing")
    host_sign = staff.locator("#doc-agreement")
    await host_sign.locator("[data-end]").scroll_into_view_if_needed()
    await host_sign.locator("[data-form]").wait_for(state="visible")
    assert "人民调解员" in await host_sign.inner_text()
    await draw(staff, "#doc-agreement [data-pad]")
    await host_sign.locator("[data-submit]").click()
    await staff.locator("#doc-agreement [data-seal]").click()
    await staff.locator("#doc-agreement [data-state]:has-text('已签署完毕并盖章')").wait_for(timeout=30_000)
    async with staff.expect_download() as download_info:
        await staff.click("#doc-agreement a.button")
    pdf = (tmp_path / "signed.pdf")
    await (await download_info.value).save_as(pdf)
    await staff.close()

    # 5. The PDF is valid for pyHanko, a changed byte breaks it; the QR code's page says valid.
    async with live.app.state.db_sessions() as db:
        certs = list(await db.scalars(select(OfficeSigning.cert_pem).where(OfficeSigning.cert_pem != "")))
    data = pdf.read_bytes()
    assert (await pades.verify(data, certs)).valid
    from pypdf import PdfReader
    text = "".join("".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(data)).pages)
    assert "签署记录" in text and "张建军" in text and "主持人宣布调解纪律" in text
    issued = (await live.staff.get(f"/api/sessions/{session_id}/outcome")).json()
    assert issued["complete"] and issued["judicial_deadline"]
    from outcomes.models import IssuedPdf
    async with live.app.state.db_sessions() as db:
        code_of = await db.scalar(select(IssuedPdf.code))
    await phone.goto(f"{live.base}/verify/{code_of}")
    assert "此文件有效" in await phone.inner_text("#verdict") and "张建军" not in await phone.inner_text("main")
    changed = bytearray(data)
    changed[len(data) // 2] ^= 0x01
    broken = tmp_path / "changed.pdf"
    broken.write_bytes(bytes(changed))
    await phone.set_input_files("#verify-file", str(broken))
    await phone.wait_for_selector("#verify-result[data-signature]")
    assert "请勿采信" in await phone.inner_text("#verify-result") or "没有数字签名" in await phone.inner_text("#verify-result")
    await phone.set_input_files("#verify-file", str(pdf))
    await phone.wait_for_selector("#verify-result[data-signature=intact]")
    assert "当前有效" in await phone.inner_text("#verify-result")
    await phone.screenshot(path=str(ARTIFACTS / "phone-verify.png"))
    await phone_context.close()
