"""A camera or microphone that cannot be had: a resident on a phone who blocked them, or allowed
only the microphone, is told in Chinese what happened and how to allow it, can try again, and
can join with voice only, or to watch and listen (real Chromium permissions, not a mock)."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright

from tests.conftest import Live
from tests.needs import CHROMIUM
from tests.web.browser import DESKTOP_PAGE, FLAGS, KEEP_PEER_CONNECTIONS, PHONE_PAGE, enter_room, shows_the_room

pytestmark = pytest.mark.browser

ASKING = [flag for flag in FLAGS if flag != "--use-fake-ui-for-media-stream"]  # permissions as the person gives them


@pytest.fixture
async def asking_browser(browser: Browser) -> AsyncIterator[Browser]:
    """Chromium whose camera and microphone need the page's permission (`browser`: granted to all)."""
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=CHROMIUM, args=ASKING)
        yield instance
        await instance.close()


async def phone(browser: Browser, live: Live, allowed: list[str]) -> Any:
    context = await browser.new_context(locale="zh-CN", **PHONE_PAGE)
    if allowed:
        await context.grant_permissions(allowed, origin=live.base)
    await context.add_init_script(KEEP_PEER_CONNECTIONS)
    page = await context.new_page()
    await page.goto(f"{live.base}/join/{live.token('party')}")
    return page


async def test_a_party_who_blocked_the_camera_is_told_how_to_allow_it_and_can_try_again(asking_browser: Browser, live: Live) -> None:
    party = await phone(asking_browser, live, allowed=[])
    try:
        await party.wait_for_selector("#device-problem", state="visible", timeout=10000)
        assert "没有得到使用摄像头或麦克风的许可" in await party.inner_text("#device-error")
        assert "只看和听" in await party.inner_text("#device-fallback")
        help_text = await party.inner_text("#device-help")
        assert all(browser_name in help_text for browser_name in ("安卓手机", "苹果手机", "微信"))
        assert await party.inner_text("#enter") == "只看和听，进入调解室"
        await party.screenshot(path="test-artifacts/devices-blocked-phone.png", full_page=True)

        await party.context.grant_permissions(["camera", "microphone"], origin=live.base)
        await party.click("#device-retry")
        await party.wait_for_selector("#device-problem", state="hidden", timeout=10000)
        assert await party.is_visible("#preview")
        assert await party.inner_text("#enter") == "进入调解室"
        # Polled with evaluate: wait_for_function's polling evaluates a string, which the page's CSP refuses.
        for _ in range(50):
            if await party.evaluate("document.querySelector('#preview').videoWidth") > 0:
                break
            await party.wait_for_timeout(200)
        assert await party.evaluate("document.querySelector('#preview').videoWidth") > 0
    finally:
        await party.context.close()


async def test_a_party_with_only_the_microphone_joins_with_voice_only_and_is_heard(
    browser: Browser, asking_browser: Browser, live: Live,
) -> None:
    party = await phone(asking_browser, live, allowed=["microphone"])
    host = await enter_room(browser, f"{live.base}/join/{live.token('host')}", DESKTOP_PAGE)
    try:
        await party.wait_for_selector("#device-problem", state="visible", timeout=10000)
        assert "只用声音参加" in await party.inner_text("#device-fallback")
        assert await party.is_visible("#device-help")  # how to allow the camera, if they want to be seen
        assert await party.inner_text("#enter") == "只用声音进入调解室"
        await party.click("#enter")
        await host.click("#people button[aria-label='准入: 张建军']", timeout=20000)
        await shows_the_room(host, videos=0, voices=1)  # the party's voice, and a name tile
        await host.wait_for_selector("#grid .tile.voice figcaption:has-text('张建军'):has-text('未开摄像头')", timeout=10000)
        await shows_the_room(party, videos=1, voices=1)
        assert await party.is_disabled("#toggle-video") and await party.is_enabled("#toggle-audio")
        await party.screenshot(path="test-artifacts/devices-voice-only-phone.png")
    finally:
        await party.context.close()
        await host.context.close()


async def test_a_page_opened_over_plain_http_on_the_office_network_says_to_use_https(live: Live) -> None:
    office = "tiaojie.office.test"  # any name but this computer's: not a secure context over http
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                   args=[*FLAGS, f"--host-resolver-rules=MAP {office} 127.0.0.1"])
        page = await (await browser.new_context(locale="zh-CN", **PHONE_PAGE)).new_page()
        await page.goto(f"{live.base.replace('127.0.0.1', office)}/join/{live.token('party')}")
        await page.wait_for_selector("#device-problem", state="visible", timeout=10000)
        assert "不是通过 HTTPS" in await page.inner_text("#device-error")
        assert await page.is_hidden("#device-retry")  # trying again cannot help
        assert await page.inner_text("#enter") == "只看和听，进入调解室"
        await browser.close()
