"""A panel larger than the video slots: every voice reaches everyone, video follows the latest
speakers (last-N) with the shared screen first."""
from __future__ import annotations

from signaling.media.peers import LAST_N
from tests.signaling.media_client import TONES
from tests.signaling.test_forwarding import Harness, close_to, wait_until

PEOPLE = 12
CAMERAS = 9  # p9, p10 and p11 join without a camera; p11 shares its screen
SCREEN_COLOUR = (200, 60, 200)


async def test_twelve_people_each_hear_eleven_voices_and_see_the_shared_screen(harness: Harness) -> None:
    clients = [await harness.add(i, camera=i < CAMERAS) for i in range(PEOPLE)]
    clients[-1].share_screen(SCREEN_COLOUR)
    await harness.engine.handle(f"p{PEOPLE - 1}", {"type": "screen", "active": True})
    screen = f"p{PEOPLE - 1}#screen"

    def heard_by_all() -> bool:
        return all(
            all(f"p{o}" in c.slot_owner and c.received_from(f"p{o}").audio_frames >= 25 for o in range(PEOPLE) if o != me)
            and (me == PEOPLE - 1 or (screen in c.slot_owner and c.received_from(screen).video_frames >= 5))
            for me, c in enumerate(clients))

    await wait_until(heard_by_all, 60)
    for me, client in enumerate(clients):
        for other in range(PEOPLE):
            if other != me:
                got = client.received_from(f"p{other}")
                assert got.tone is not None and abs(got.tone - TONES[other]) < 40, (me, other, got.tone)
        if me != PEOPLE - 1:
            assert close_to(client.received_from(screen).last_yuv, SCREEN_COLOUR), me

    # Video goes in at most LAST_N slots at once, the screen always among them; cameras that send
    # nothing are the ones left out first.
    before = [[slot.video_frames for slot in c.slots] for c in clients]
    await wait_until(lambda: all(c.received_from(screen).video_frames > before[me][c.slot_owner.index(screen)] + 5
                                 for me, c in enumerate(clients[:-1])), 30)
    for me, client in enumerate(clients[:-1]):
        moving = [client.slot_owner[n] for n, slot in enumerate(client.slots) if slot.video_frames > before[me][n]]
        assert screen in moving and len(moving) <= LAST_N, (me, moving)
        told = [m for m in harness.seen[f"p{me}"] if m["type"] == "bandwidth"][-1]
        assert screen not in told["not_shown"] and told["paused"] == [] and not told["audio_only"]
        # Everyone else with a camera that sends is either shown or listed as not shown.
        assert set(told["not_shown"]) >= {f"p{o}" for o in range(CAMERAS, PEOPLE) if o != me} - set(moving), (me, told)
        assert len(told["not_shown"]) == (PEOPLE - 1 + 1) - LAST_N, (me, told)
