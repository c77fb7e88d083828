"""The room page in real Chromium across three nodes with the default settings: served by one
node, it joins the room on another (moved), and when that node is killed it comes back by itself
on a live one, without waiting out the dead time (the dead node's port refuses connections)."""
from __future__ import annotations

import time

from playwright.async_api import Browser

from tests.cluster.conftest import Cluster, staff_client
from tests.cluster.test_rooms_across_nodes import book, enter, node_rooms, room_node
from tests.conftest import token_of
from tests.signaling.test_forwarding import wait_until
from tests.web.browser import KEEP_PEER_CONNECTIONS, receiving, shows_the_room
from tests.web.conftest import videos_playing


async def test_the_room_page_follows_its_room_to_another_node_and_back(browser: Browser, cluster: Cluster) -> None:
    for name in ("a", "b", "c"):
        cluster.start(name)  # the default dead time, 10 s
    a = cluster.node("a").url
    staff = staff_client(cluster.node("a"))
    busy, session = book(staff, "邻里噪音"), book(staff, "宠物狗纠纷")
    other_host = await enter([a], busy["id"], 3, token_of(busy, "host"))  # node a now holds a room
    assert room_node(cluster, busy["id"]) == "a"
    await wait_until(lambda: node_rooms(cluster, "a") == [str(busy["id"])], 10)

    pages = []
    for kind in ("host", "party"):
        context = await browser.new_context(viewport={"width": 1000, "height": 700}, locale="zh-CN")
        await context.add_init_script(KEEP_PEER_CONNECTIONS)
        page = await context.new_page()
        await page.goto(f"{a}/join/{token_of(session, kind)}")  # both pages come from node a
        await page.click("#enter")
        pages.append(page)
    host, party = pages
    try:
        await party.wait_for_selector("#notice:has-text('请稍候')", timeout=20000)
        await host.click("#people button[aria-label='准入: 张建军']", timeout=20000)
        before = [await receiving(page) for page in pages]
        assert await videos_playing(host, 1) and await videos_playing(party, 1)
        first = room_node(cluster, session["id"])
        assert first in ("b", "c")  # a least loaded node, not the one serving the pages (a has a room)

        cluster.node(first).kill()
        killed = time.monotonic()
        # Both pages reconnect through the site (node a), which finds the room's node gone and
        # places the room again; the party comes back admitted; nobody clicks anything.
        for page, (connections, *_) in zip(pages, before):
            await receiving(page, after=connections, timeout_s=20)
        back = time.monotonic() - killed
        print(f"room back on node {room_node(cluster, session['id'])} with video both ways {back:.1f} s after node {first} died")
        assert room_node(cluster, session["id"]) not in (first, "a")  # the live node without a room
        for page, (connections, *_) in zip(pages, before):  # the new connection's media, none of the old
            await shows_the_room(page, videos=1, voices=1, after=connections, timeout_s=20)
        assert not await party.is_visible("#notice:has-text('请稍候')")

        # The node it came back on is stopped as systemd stops it (SIGTERM): the pages are back on
        # the last node, a, as soon as the stopping node has closed their sockets.
        second = room_node(cluster, session["id"])
        during = [await receiving(page) for page in pages]
        stopped = time.monotonic()
        cluster.node(second).stop()
        for page, (connections, *_) in zip(pages, during):
            await receiving(page, after=connections, timeout_s=20)
        print(f"room back on node a {time.monotonic() - stopped:.1f} s after node {second} was stopped (SIGTERM)")
        assert room_node(cluster, session["id"]) == "a"
    finally:
        for page in pages:
            await page.context.close()
        await other_host.close()
