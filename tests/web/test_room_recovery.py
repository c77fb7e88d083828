"""The room page when things go wrong: after its media worker dies the page reconnects by itself
and shows and plays the new connection's media, nothing of the old one (staff on HiDPI desktops,
the party on a phone, so the large simulcast layer is in use); a party whose browser cannot join
is shown to the host with the reason."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest
from playwright.async_api import Browser

from foundation.config import Settings
from tests.conftest import Live
from tests.signaling.test_ws import join
from tests.web.browser import DESKTOP_PAGE, PHONE_PAGE, enter_room, shows_the_room


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    return make_settings(media_workers=1)


async def test_after_a_media_worker_restart_every_page_shows_the_new_connection(browser: Browser, live: Live) -> None:
    pages = [await enter_room(browser, f"{live.base}/join/{live.token(kind)}", device)
             for kind, device in (("host", DESKTOP_PAGE), ("expert", DESKTOP_PAGE), ("party", PHONE_PAGE))]
    host, _, party = pages
    try:
        await host.click("#people button[aria-label='准入: 张建军']", timeout=20000)
        connections = [await shows_the_room(page, videos=2, voices=2) for page in pages]

        hub = live.app.state.media
        hub.process_of(str(live.session["id"])).kill()
        killed = time.monotonic()
        for page, connection in zip(pages, connections):
            await shows_the_room(page, videos=2, voices=2, after=connection, timeout_s=30)
        print(f"every page shows the room again {time.monotonic() - killed:.1f} s after the worker died")
        assert not await party.is_visible("#notice:has-text('请稍候')")  # still admitted
    finally:
        for page in pages:
            await page.context.close()


async def test_the_host_sees_why_a_party_s_browser_cannot_join(browser: Browser, live: Live) -> None:
    host = await enter_room(browser, f"{live.base}/join/{live.token('host')}", DESKTOP_PAGE)
    party = await join(live, 1, live.token("party"))  # a browser that sends H.264 only
    try:
        await host.wait_for_selector("#people li:has-text('张建军')", timeout=20000)
        offer = (await party.media.offer()).replace("VP8/90000", "H264/90000")
        await party.socket.send(json.dumps({"type": "offer", "sdp": offer}))
        await host.wait_for_selector("#people li:has-text('张建军'):has-text('无法加入：此浏览器不支持所需的视频格式')",
                                     timeout=10000)
    finally:
        await party.close()
        await host.context.close()
