"""The room page after its media worker dies: the page reconnects by itself and shows and plays
the new connection's media, nothing of the old one (staff on HiDPI desktops, the party on a
phone, so the large simulcast layer is in use)."""
from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.async_api import Browser

from server.config import Settings
from tests.conftest import Live
from tests.web.browser import KEEP_PEER_CONNECTIONS, shows_the_room

DESKTOP = {"viewport": {"width": 1440, "height": 900}, "device_scale_factor": 2}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True}


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    return make_settings(media_workers=1)


async def test_after_a_media_worker_restart_every_page_shows_the_new_connection(browser: Browser, live: Live) -> None:
    pages = []
    for kind, device in (("host", DESKTOP), ("expert", DESKTOP), ("party", PHONE)):
        context = await browser.new_context(locale="zh-CN", **device)
        await context.add_init_script(KEEP_PEER_CONNECTIONS)
        page = await context.new_page()
        await page.goto(f"{live.base}/join/{live.token(kind)}")
        await page.click("#enter")
        pages.append(page)
    host, _, party = pages
    try:
        await host.click("#people button[aria-label='准入: 张建军']", timeout=20000)
        connections = [await shows_the_room(page, videos=2, voices=2) for page in pages]

        hub = live.app.state.media
        hub._room_worker[str(live.session["id"])].process.kill()
        killed = time.monotonic()
        for page, connection in zip(pages, connections):
            await shows_the_room(page, videos=2, voices=2, after=connection, timeout_s=30)
        print(f"every page shows the room again {time.monotonic() - killed:.1f} s after the worker died")
        assert not await party.is_visible("#notice:has-text('请稍候')")  # still admitted
    finally:
        for page in pages:
            await page.context.close()
