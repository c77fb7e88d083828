"""A phone that changes networks in the middle of a mediation (Wi-Fi to 4G), or loses it for a
while (a lift, a tunnel): the party's Chromium runs in a network namespace whose address is
replaced, or whose link goes down. The server cannot restart ICE; the page joins again by itself
once its media has been disconnected for 3 s, the party keeps the seat the host admitted it to,
and the page shows and plays the new connection's media, nothing of the old one."""
from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import TimeoutError as PlaywrightTimeout
from playwright.async_api import async_playwright

from tests.conftest import Live
from tests.needs import CHROMIUM
from tests.web.browser import DESKTOP_PAGE, FLAGS, PHONE_PAGE, enter_room, receiving, shows_the_room
from tests.web.netns import Namespace

HOST_IP, WIFI_IP, MOBILE_IP = "10.78.0.1", "10.78.0.2", "10.78.0.3"
PHONE = Namespace("tj-move", "tj-move-h", "tj-move0", HOST_IP, WIFI_IP)


@pytest.fixture
def live_host() -> str:
    return "0.0.0.0"  # the party reaches the server from its namespace


@pytest.fixture
def phone(tmp_path: Path) -> Iterator[Path]:
    """The phone's network (a namespace on a veth pair), and a Chromium that runs in it."""
    PHONE.create()
    try:
        yield PHONE.chromium(tmp_path)
    finally:
        PHONE.remove()


async def admit(pages: dict[str, Any]) -> None:
    """The host admits the party once it waits in the lobby (on a busy machine both pages take
    a while to open their devices and join); what each page says if it never comes."""
    try:
        await pages["host"].click("#people button[aria-label='准入: 张建军']", timeout=45000)
    except PlaywrightTimeout:
        said = {kind: await page.inner_text("#room") for kind, page in pages.items()}
        raise AssertionError(f"the party never waited in the lobby: {said}") from None


@contextlib.asynccontextmanager
async def room(live: Live, phone: Path, kinds: tuple[str, ...]) -> AsyncIterator[dict[str, Any]]:
    """Pages in the room by kind: staff on HiDPI desktops, the party on a phone-sized page in the
    phone's network namespace, admitted by the host."""
    port = live.base.rsplit(":", 1)[1]
    async with async_playwright() as playwright:
        office = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        mobile = await playwright.chromium.launch(executable_path=str(phone), args=FLAGS + [
            f"--unsafely-treat-insecure-origin-as-secure=http://{HOST_IP}:{port}"])
        try:
            pages = {}
            for kind in kinds:
                if kind == "party":
                    url = f"http://{HOST_IP}:{port}/join/{live.token(kind)}"
                    pages[kind] = await enter_room(mobile, url, PHONE_PAGE)
                else:
                    pages[kind] = await enter_room(office, f"{live.base}/join/{live.token(kind)}", DESKTOP_PAGE)
            await admit(pages)
            yield pages
        finally:
            await office.close()
            await mobile.close()


async def test_a_party_whose_phone_changes_networks_is_back_within_seconds(live: Live, phone: Path) -> None:
    async with room(live, phone, ("host", "party")) as pages:
        host, party = pages["host"], pages["party"]
        connections = (await receiving(party))[0]
        await receiving(host)

        # Wi-Fi to 4G: the old address goes, a new one comes; nothing reaches the old one.
        PHONE.run("ip", "addr", "del", f"{WIFI_IP}/24", "dev", PHONE.ns_if)
        PHONE.run("ip", "addr", "add", f"{MOBILE_IP}/24", "dev", PHONE.ns_if)
        switched = time.monotonic()
        await receiving(party, after=connections, timeout_s=30)
        await receiving(host, timeout_s=10)
        back = time.monotonic() - switched
        print(f"video both ways again {back:.1f} s after the phone changed networks")
        assert back < 20  # waiting for ICE to fail would take about 30 s
        assert not await party.is_visible("#notice:has-text('请稍候')")  # still admitted: no lobby


OUTAGE_S = 12


async def test_after_twelve_seconds_without_network_the_party_sees_and_hears_the_room_again(
        live: Live, phone: Path) -> None:
    async with room(live, phone, ("host", "expert", "party")) as pages:
        party = pages["party"]
        connection = await shows_the_room(party, videos=2, voices=2)
        await shows_the_room(pages["host"], videos=2, voices=2)

        PHONE.run("ip", "link", "set", PHONE.ns_if, "down")
        await party.wait_for_timeout(OUTAGE_S * 1000)
        PHONE.run("ip", "link", "set", PHONE.ns_if, "up")
        back = time.monotonic()
        # Not a black room: both videos move and the voices play, from the new connection.
        await shows_the_room(party, videos=2, voices=2, after=connection, timeout_s=40)
        print(f"the party sees and hears the room {time.monotonic() - back:.1f} s after its network came back")
        for kind in ("host", "expert"):
            await shows_the_room(pages[kind], videos=2, voices=2, timeout_s=20)
        assert not await party.is_visible("#notice:has-text('请稍候')")  # still admitted: no lobby


async def test_a_party_on_a_slow_link_is_told_and_can_switch_to_audio_only_and_back(live: Live, phone: Path) -> None:
    async with room(live, phone, ("host", "party")) as pages:
        host, party = pages["host"], pages["party"]
        await shows_the_room(party, videos=1, voices=1)
        assert await party.is_hidden("#link-notice")

        # The phone's downlink falls to 300 kbit/s mid-call: too little for the large layer its
        # screen wants. The server's measurements say so, to it and to the host.
        PHONE.shape(300)
        await party.wait_for_selector("#link-notice:has-text('您的网络较慢')", timeout=40000)
        await host.wait_for_selector("#grid figcaption:has-text('对方网络较慢')", timeout=10000)
        # The phone's own entry in the list says "your network", never "the other side's".
        await party.wait_for_selector("#people li:has-text('您的网络较慢')", timeout=10000)
        assert "对方网络较慢" not in await party.inner_text("#people")
        await party.click("#audio-only")  # 切换为仅语音
        await party.wait_for_selector("#link-notice:has-text('已切换为仅语音')")
        await party.wait_for_selector("#grid .tile.voice", timeout=10000)
        await shows_the_room(party, videos=0, voices=1)  # the host's voice still plays

        PHONE.shape(None)
        await party.click("#audio-only")  # 恢复视频
        await shows_the_room(party, videos=1, voices=1, timeout_s=40)
        # The notice goes once the estimate has grown back by probes and the link has been good
        # for 5 s: once in CI, with the suite beside it, that took longer than 30 s (how long it
        # takes is the benchmark's: bench/weak_link_browser.py, the large layer's return).
        await party.wait_for_selector("#link-notice", state="hidden", timeout=60000)
        await host.wait_for_selector("#grid figcaption:has-text('对方网络较慢')", state="detached", timeout=30000)


SENDING = """async () => {
  const pc = window.peerConnections[window.peerConnections.length - 1];
  const out = { layers: {}, available: null };
  (await pc.getStats()).forEach((r) => {
    if (r.type === "outbound-rtp" && r.kind === "video" && r.rid) out.layers[r.rid] = r.bytesSent;
    if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded") out.available = r.availableOutgoingBitrate;
  });
  return out;
}"""


async def test_a_party_whose_uplink_falls_mid_call_stops_its_large_layer_within_seconds(live: Live, phone: Path) -> None:
    """The server's transport-cc feedback lets the party's browser see its own uplink: when the
    phone's uplink falls to 300 kbit/s, it stops sending its large camera layer (which no longer
    fits) within seconds, instead of losing a third of its packets for twenty (its estimate from
    receiver reports alone reacts only to heavy loss). Its probes (padding on the large layer's
    SSRC) must not keep that layer alive for the others, who get the small one."""
    async with room(live, phone, ("host", "party")) as pages:
        host, party = pages["host"], pages["party"]
        await shows_the_room(host, videos=1, voices=1)
        # The large layer is sent on the unlimited link (its estimate ramps up first: on a busy
        # machine that takes longer than the room takes to show, so it is waited for).
        second = await party.evaluate(SENDING)
        for _ in range(15):
            first, second = second, (await party.wait_for_timeout(2000), await party.evaluate(SENDING))[1]
            if (second["layers"].get("h", 0) - first["layers"].get("h", 0)) / 2 > 10_000:
                break
        assert (second["layers"]["h"] - first["layers"]["h"]) / 2 > 10_000, (first, second)

        PHONE.run("tc", "qdisc", "add", "dev", PHONE.ns_if, "root", "tbf", "rate", "300kbit", "burst", "6kb", "latency", "250ms")
        shaped = time.monotonic()
        before = await party.evaluate(SENDING)
        stopped = None
        while time.monotonic() - shaped < 20:
            await party.wait_for_timeout(1000)
            now = await party.evaluate(SENDING)
            if now["layers"]["h"] - before["layers"]["h"] < 2_000:  # (under 16 kbit/s: stopped)
                stopped = time.monotonic() - shaped
                break
            before = now
        print(f"the party's large layer stopped {stopped} s after its uplink fell to 300 kbit/s; "
              f"its estimate {now['available']}")
        assert stopped is not None and stopped < 6, (stopped, now)  # without the feedback: 9 s, estimate 511 kbit/s
        assert now["available"] is not None and now["available"] < 450_000, now
        await shows_the_room(host, videos=1, voices=1, timeout_s=20)  # the host still sees and hears the party

