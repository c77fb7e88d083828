"""The join page and the room in real Chromium: four people see and hear each other."""
from __future__ import annotations

import asyncio

from playwright.async_api import Browser

from tests.conftest import Live
from tests.web.conftest import ARTIFACTS, videos_playing


async def test_four_people_in_the_room(browser: Browser, live: Live) -> None:
    people = [("host", 0), ("party", 0), ("party", 1), ("expert", 0)]
    pages = []
    for kind, n in people:
        context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
        page = await context.new_page()
        await page.goto(f"{live.base}/join/{live.token(kind, n)}")
        pages.append(page)
    first = pages[1]
    await first.wait_for_selector("text=设备检查")
    assert "宠物狗纠纷" in await first.content()
    assert "法制民警" in await first.inner_text("#invitation")
    await first.wait_for_function("document.querySelector('#preview').videoWidth > 0", timeout=15000)
    await first.screenshot(path=str(ARTIFACTS / "join-page.png"), full_page=True)

    for page in pages:
        await page.click("#enter")
    host = pages[0]
    # The parties wait in the lobby until the host admits them.
    await pages[1].wait_for_selector("#notice:has-text('请稍候')", timeout=15000)
    for name in ("张建军", "李秀兰"):
        await host.click(f"#people button[aria-label='准入: {name}']", timeout=15000)
    for page in pages:
        for _ in range(60):
            if await videos_playing(page, 3):
                break
            await asyncio.sleep(0.5)
        assert await videos_playing(page, 3), await page.inner_text("#room")
    names = await pages[0].inner_text("#grid")
    assert "张建军" in names and "李秀兰" in names and "法制民警" in names
    await pages[0].screenshot(path=str(ARTIFACTS / "room-4-people.png"))

    # Chat goes to everyone; muting shows in the participant list.
    await pages[1].fill("#chat-text", "我同意先听听专家的意见")
    await pages[1].press("#chat-text", "Enter")
    for page in pages:
        await page.wait_for_selector("#chat li:has-text('我同意先听听专家的意见')", timeout=10000)
    await pages[2].click("#toggle-audio")
    await pages[0].wait_for_selector("#people li:has-text('李秀兰（当事人） · 已静音')", timeout=10000)

    # Recording starts only when both parties agree; then everyone sees the indicator.
    for page in pages[1:3]:
        page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await host.click("#record")
    for page in pages:
        await page.wait_for_selector("#recording:has-text('录制中')", timeout=20000)
    await host.click("#record")
    await host.wait_for_selector("#recording", state="hidden", timeout=20000)

    # The host ends the session: everyone is told.
    host.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await host.click("#end")
    for page in pages[1:]:
        await page.wait_for_selector("#notice:has-text('本次调解已结束')", timeout=30000)
    for page in pages:
        await page.context.close()


async def test_expired_link_says_so(browser: Browser, live: Live) -> None:
    page = await browser.new_page()
    response = await page.goto(f"{live.base}/join/not-a-real-token")
    assert response is not None and response.status == 401
    assert "此邀请链接无效" in await page.inner_text("main")
    await page.close()
