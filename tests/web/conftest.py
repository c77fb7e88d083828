"""Playwright with Debian's Chromium and fake camera and microphone (never a downloaded browser)."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.conftest import STAFF_PASSWORD
from tests.needs import CHROMIUM
from tests.web.browser import FLAGS

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield instance
        await instance.close()


async def staff_page(browser: Browser, base: str, username: str = "staff1") -> Page:
    """A new page logged in through the login form as a staff member (default: the fixtures')."""
    page = await browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    await page.goto(f"{base}/login")
    await page.fill("#username", username)
    await page.fill("#password", STAFF_PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/")
    return page


async def videos_playing(page: Any, count: int) -> bool:
    """Whether `count` remote videos have a size and advancing frames."""
    script = """() => [...document.querySelectorAll('#grid .tile[data-slot] video')]
        .map(v => [v.videoWidth, v.videoHeight, v.currentTime])"""
    first = await page.evaluate(script)
    await page.wait_for_timeout(700)
    second = await page.evaluate(script)
    if len(first) < count or len(second) < count:
        return False
    return all(w > 0 and h > 0 and later[2] > earlier[2] for (w, h, _), earlier, later in
               zip(second, first, second))
