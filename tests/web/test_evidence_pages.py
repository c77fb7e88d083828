"""Evidence in real Chromium: a party uploads from the invitation page, staff share it."""
from __future__ import annotations

from playwright.async_api import Browser

from tests.conftest import Live
from tests.web.conftest import ARTIFACTS, staff_page

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def test_party_uploads_and_staff_share(browser: Browser, live: Live) -> None:
    party = await browser.new_page(locale="zh-CN")
    await party.goto(f"{live.base}/join/{live.token('party', 0)}")
    await party.wait_for_selector("#evidence-list:has-text('暂无材料')")
    await party.set_input_files("#evidence-file", files=[{"name": "收据.png", "mimeType": "image/png", "buffer": PNG}])
    await party.fill("#evidence-description", "维修费收据")
    await party.click("#evidence-form button[type=submit]")
    await party.wait_for_selector("#evidence-list a:has-text('收据.png')")
    assert "维修费收据" in await party.inner_text("#evidence-list")
    await party.set_input_files("#evidence-file", files=[{"name": "病毒.exe", "mimeType": "application/octet-stream", "buffer": b"MZ"}])
    await party.click("#evidence-form button[type=submit]")
    await party.wait_for_selector("#evidence-status.error")
    assert "不接受这种类型的文件" in await party.inner_text("#evidence-status")

    other = await browser.new_page(locale="zh-CN")
    await other.goto(f"{live.base}/join/{live.token('party', 1)}")
    await other.wait_for_selector("#evidence-list:has-text('暂无材料')")

    staff = await staff_page(browser, live.base)
    await staff.goto(f"{live.base}/disputes/{live.session['dispute_id']}")
    await staff.click("#evidence-list button:has-text('共享给双方')")
    await staff.wait_for_selector("#evidence-list:has-text('已共享给双方')")
    await staff.screenshot(path=str(ARTIFACTS / "staff-evidence.png"), full_page=True)

    await other.reload()
    await other.wait_for_selector("#evidence-list a:has-text('收据.png')")
    for page in (party, other, staff):
        await page.close()
