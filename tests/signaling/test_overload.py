"""A media process that cannot keep up sheds video in a known order (signaling/media/overload.py):
the order as plain logic, then real aiortc clients in a room whose event loop is really made late."""
from __future__ import annotations

import asyncio
import time

from signaling.media.overload import GIVE_BACK_S, OVERLOADED_AFTER_S, RELIEF_S, Shedding
from signaling.media.router import MediaRouter
from tests.signaling.media_client import browser_like_encoders
from tests.signaling.test_forwarding import Harness, assert_clean_voice, wait_until


def test_the_least_watched_camera_goes_first_one_every_few_seconds_and_comes_back_last_shed_first() -> None:
    shedding = Shedding()
    cameras = ["quiet", "middle", "speaker"]  # the least watched first
    said = [shedding.second(0.3, cameras) for _ in range(10)]  # late, not behind half the time: keeping up
    assert shedding.shed == [] and set(said) == {None}
    said = [shedding.second(0.8, cameras) for _ in range(OVERLOADED_AFTER_S)]
    assert said == [None] * (OVERLOADED_AFTER_S - 1) + [True]  # told once
    assert shedding.shed == ["quiet"]
    said = [shedding.second(0.8, cameras) for _ in range(OVERLOADED_AFTER_S)]
    assert shedding.shed == ["quiet", "middle"] and set(said) == {None}  # (still overloaded: nothing to say)
    # Keeping up again: one back after RELIEF_S, the last shed first, the next GIVE_BACK_S later;
    # then, GIVE_BACK_S later, no longer overloaded (said once).
    said = [shedding.second(0.0, cameras) for _ in range(RELIEF_S)]
    assert shedding.shed == ["quiet"] and shedding.overloaded
    said += [shedding.second(0.0, cameras) for _ in range(GIVE_BACK_S)]
    assert shedding.shed == [] and shedding.overloaded
    said += [shedding.second(0.0, cameras) for _ in range(GIVE_BACK_S)]
    assert not shedding.overloaded and said.count(False) == 1 and said[-1] is False
    assert shedding.episodes == 1


def test_a_camera_that_leaves_is_no_longer_shed_and_nothing_to_shed_is_still_overloaded() -> None:
    shedding = Shedding()
    for _ in range(OVERLOADED_AFTER_S):
        shedding.second(0.9, ["a"])
    assert shedding.shed == ["a"]
    shedding.second(0.9, [])  # a left
    assert shedding.shed == [] and shedding.overloaded  # an audio-only room can be too much too


async def test_a_process_with_nobody_in_it_is_not_overloaded_however_late_it_runs() -> None:
    router = MediaRouter(lambda peer_id, message: asyncio.sleep(0))
    for _ in range(OVERLOADED_AFTER_S + 2):
        router.lag.tick(2000.0)  # two seconds late: behind the whole second
        await router.control()
    assert not router.shedding.overloaded and router.stats()["overloaded"] == 0
    await router.close()


class LateLoop:
    """Blocks the event loop for most of each moment, as a process with too much to do."""

    def __init__(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            time.sleep(0.8)  # (blocking: the loop itself is late)
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        self.task.cancel()


async def test_an_overloaded_process_holds_the_least_watched_camera_to_its_small_layer_and_tells_the_host(
        harness: Harness, monkeypatch) -> None:
    browser_like_encoders(monkeypatch.setattr)
    host = await harness.add(0, kind="host", camera=False)
    await harness.add(1, moving=True, simulcast=True)
    await harness.add(2, moving=True, simulcast=True)
    await wait_until(lambda: all(host.received_from(p).last_width == 320 for p in ("p1", "p2")), 30)
    router = harness.engine.router
    # This test's own clients (their VP8 encoders and decoders) keep its event loop behind for
    # 0.2-0.5 of each second on a busy machine, which a server's loop is not: overloaded and
    # calm here are above that.
    router.shedding = Shedding(overloaded_share=0.75, calm_share=0.65)
    asked: list[int] = []
    send_remb = router.peers["p1"].send_remb
    monkeypatch.setattr(router.peers["p1"], "send_remb", lambda bps: (asked.append(bps), send_remb(bps)))

    late = LateLoop()
    try:  # (equally watched: the first by its id goes first)
        await wait_until(lambda: router.shedding.shed == ["p1"], 20)
    finally:
        late.stop()
    assert [m["busy"] for m in harness.seen["p0"] if m["type"] == "server_busy"] == [True]  # the host, once
    assert not any(m["type"] == "server_busy" for p in ("p1", "p2") for m in harness.seen[p])
    assert router.stats()["overloaded"] == 1 and router.stats()["shed_videos"] == 1
    # Everyone gets p1's small layer alone, p2's large one still; p1's browser is asked for its
    # small layer alone; nobody is told their network is slow; every voice goes on.
    await wait_until(lambda: host.received_from("p1").last_width == 160, 15)
    assert router.shedding.shed == ["p1"] and router.peers["p0"].capped == {"p1"}  # (p2 not: its layer is the link's to choose)
    await wait_until(lambda: asked and asked[-1] < 200_000, 5)
    voices = {p: await host.voice_packets(p) for p in ("p1", "p2")}
    for p in ("p1", "p2"):
        await assert_clean_voice(host, p, voices[p])
    assert not any(m["type"] == "link" and "weak" in (m["downlink"], m["uplink"]) for ms in harness.seen.values() for m in ms)
    # Keeping up again: p1's large layer comes back, and later the host hears it is over, once.
    shares: list[float] = []  # (printed: how busy the test's own clients keep it)
    await wait_until(lambda: shares.append(router.shedding.behind_share) or host.received_from("p1").last_width == 320,
                     3 * RELIEF_S + 10)
    print("the loop behind, share of each second, after:", sorted(set(shares)))
    await wait_until(lambda: any(m["type"] == "server_busy" and not m["busy"] for m in harness.seen["p0"]), 2 * RELIEF_S + 5)
    assert [m["busy"] for m in harness.seen["p0"] if m["type"] == "server_busy"] == [True, False]
    assert router.stats()["overloaded"] == 0 and router.stats()["overload_episodes"] == 1
