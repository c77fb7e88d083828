"""Room features with real aiortc clients: lobby, host controls, observer, caucus, reconnection."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from signaling.errors import SignalingError
from tests.signaling.media_client import COLOURS, MediaClient
from tests.signaling.test_forwarding import Harness, close_to, wait_until


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness(reconnect_timeout_s=2.0)
    yield h
    await h.close()


def last(harness: Harness, peer_id: str, kind: str) -> dict:
    """The last message of a type that a participant got."""
    return next(m for m in reversed(harness.seen[peer_id]) if m["type"] == kind)


def frames(client: MediaClient, peer_id: str, kind: str = "video") -> int:
    if peer_id not in client.slot_owner:
        return 0
    got = client.received_from(peer_id)
    return got.video_frames if kind == "video" else got.audio_frames


async def grows(client: MediaClient, peer_id: str, kind: str = "video", by: int = 5, timeout_s: float = 10) -> None:
    start = frames(client, peer_id, kind)
    await wait_until(lambda: frames(client, peer_id, kind) >= start + by, timeout_s)


async def stays(client: MediaClient, peer_id: str, kind: str = "video", seconds: float = 1.5) -> None:
    start = frames(client, peer_id, kind)
    await asyncio.sleep(seconds)
    assert frames(client, peer_id, kind) <= start + 1  # at most a frame already in flight


async def test_lobby_until_admitted_and_lobby_messages(harness: Harness) -> None:
    host = await harness.add(0, kind="host")
    party = await harness.add(1, kind="party")
    other = await harness.add(2, kind="party")
    assert any(m["type"] == "lobby" for m in harness.seen["p1"])
    await stays(party, "p0")
    assert "p1" not in host.slot_owner and "p0" not in party.slot_owner
    host_view = last(harness, "p0", "participants")["participants"]
    assert [p["admitted"] for p in host_view if p["peer_id"] in ("p1", "p2")] == [False, False]
    assert all(p["peer_id"] != "p2" for p in last(harness, "p1", "participants")["participants"])

    await harness.moderate("p0", "lobby_message", peer_id="p1", text="请稍候，专家马上到")
    await harness.moderate("p0", "lobby_message", text="调解将推迟十分钟开始")
    to_p1 = [m["text"] for m in harness.seen["p1"] if m["type"] == "lobby_message"]
    to_p2 = [m["text"] for m in harness.seen["p2"] if m["type"] == "lobby_message"]
    assert to_p1 == ["请稍候，专家马上到", "调解将推迟十分钟开始"] and to_p2 == ["调解将推迟十分钟开始"]

    await harness.moderate("p0", "admit", peer_id="p1")
    await grows(party, "p0")
    await grows(host, "p1")
    assert close_to(party.received_from("p0").last_yuv, COLOURS[0])
    assert "p2" not in host.slot_owner  # still waiting
    assert {"kind": "admit", "peer_id": "p1", "by": "p0"} in harness.records
    del other


async def test_only_the_host_moderates(harness: Harness) -> None:
    await harness.add(0, kind="host")
    await harness.add(1, kind="expert")
    with pytest.raises(SignalingError) as refused:
        await harness.moderate("p1", "remove", peer_id="p0")
    assert refused.value.code == "forbidden"
    with pytest.raises(SignalingError):
        await harness.moderate("p0", "explode")
    with pytest.raises(SignalingError):
        await harness.moderate("p0", "admit", peer_id="nobody")


async def test_host_mutes_and_asks_to_unmute_never_forces(harness: Harness) -> None:
    host = await harness.add(0, kind="host")
    await harness.add(1, kind="expert")
    await grows(host, "p1", "audio", 20)
    await harness.moderate("p0", "mute", peer_id="p1")
    assert any(m["type"] == "force_mute" for m in harness.seen["p1"])
    await stays(host, "p1", "audio")
    listed = next(p for p in last(harness, "p0", "participants")["participants"] if p["peer_id"] == "p1")
    assert listed["audio_muted"] is True
    await harness.moderate("p0", "ask_unmute", peer_id="p1")
    assert any(m["type"] == "unmute_request" for m in harness.seen["p1"])
    await stays(host, "p1", "audio", 0.5)  # asking does not unmute
    await harness.engine.handle("p1", {"type": "mute", "audio": False})  # the expert chooses to
    await grows(host, "p1", "audio", 20)


async def test_removed_participant_is_gone(harness: Harness) -> None:
    host = await harness.add(0, kind="host")
    await harness.add(1, kind="expert")
    await grows(host, "p1")
    await harness.moderate("p0", "remove", peer_id="p1")
    assert any(m["type"] == "removed" for m in harness.seen["p1"])
    assert "p1" not in harness.engine.router.peers
    assert "p1" not in host.slot_owner
    assert {"kind": "remove", "peer_id": "p1", "by": "p0", "revoke": False} in harness.records


async def test_hidden_observer_receives_everything_and_appears_nowhere(harness: Harness) -> None:
    host = await harness.add(0, kind="host")
    party = await harness.add(1, kind="party")
    await harness.moderate("p0", "admit", peer_id="p1")
    judge = await harness.add(2, kind="observer")
    await grows(judge, "p0")
    await grows(judge, "p1")
    assert close_to(judge.received_from("p1").last_yuv, COLOURS[1])
    await stays(host, "p2")
    assert "p2" not in host.slot_owner and "p2" not in party.slot_owner
    for peer_id in ("p0", "p1"):
        listed = [p["peer_id"] for p in last(harness, peer_id, "participants")["participants"]]
        assert "p2" not in listed


async def test_caucus_keeps_the_other_party_apart(harness: Harness) -> None:
    host = await harness.add(0, kind="host")
    lawyer = await harness.add(1, kind="expert")
    applicant = await harness.add(2, kind="party")
    respondent = await harness.add(3, kind="party")
    for p in ("p2", "p3"):
        await harness.moderate("p0", "admit", peer_id=p)
    await grows(respondent, "p0")
    await harness.moderate("p0", "caucus_start", peer_ids=["p1", "p2"])
    assert last(harness, "p3", "participants")["in_caucus"] is False
    for peer_id in ("p0", "p1", "p2"):
        assert peer_id not in respondent.slot_owner
    await stays(respondent, "p0", seconds=1.0)
    await grows(applicant, "p1")
    await grows(host, "p2")
    assert "p3" not in host.slot_owner and "p3" not in applicant.slot_owner
    # Chat stays on its side too.
    await harness.engine.handle("p2", {"type": "chat", "text": "我可以让步"})
    assert not any(m["type"] == "chat" for m in harness.seen["p3"])
    await harness.moderate("p0", "caucus_end")
    await grows(respondent, "p0")
    await grows(respondent, "p2")
    await grows(applicant, "p3")
    del lawyer


async def test_dropped_participant_resumes_seat_and_state(harness: Harness) -> None:
    host = await harness.add(0, kind="host")
    party = await harness.add(1, kind="party")
    await harness.moderate("p0", "admit", peer_id="p1")
    await harness.engine.handle("p1", {"type": "mute", "video": True})
    await grows(host, "p1")
    await harness.engine.disconnected("p1")  # the phone switched networks
    await party.close()
    reconnecting = next(p for p in last(harness, "p0", "participants")["participants"] if p["peer_id"] == "p1")
    assert reconnecting["reconnecting"] is True
    loop = asyncio.get_running_loop()
    back_at = loop.time()
    again = MediaClient(1)
    harness.clients["p1"] = again
    await harness.engine.join("room-1", "p1", {"name": "客户1", "role": "party", "kind": "party"})
    joined = last(harness, "p1", "joined")
    assert joined["resumed"] is True and joined["admitted"] is True and joined["video_muted"] is True
    await harness.connect("p1", again)
    await wait_until(lambda: frames(again, "p0") >= 1 and frames(host, "p1") >= 1, 10)
    assert loop.time() - back_at < 5
    assert not any(m["type"] == "lobby" for m in harness.seen["p1"][-3:])


async def test_dropped_participant_removed_after_timeout(harness: Harness) -> None:
    host = await harness.add(0, kind="host")
    expert = await harness.add(1, kind="expert")
    lawyer = await harness.add(2, kind="expert")
    await grows(host, "p2")
    await harness.engine.disconnected("p1")
    await expert.close()
    await wait_until(lambda: {"kind": "leave", "peer_id": "p1", "reason": "timeout"} in harness.records, 5)
    assert all(p["peer_id"] != "p1" for p in last(harness, "p0", "participants")["participants"])
    await grows(host, "p2")  # the others carry on
    del lawyer


async def test_active_speaker_from_audio_levels(harness: Harness) -> None:
    await harness.add(0, kind="host", volume=0.002)
    await harness.add(1, kind="expert", volume=1.0)
    await harness.add(2, kind="expert", volume=0.002)
    assert harness.engine.router.peers["p1"].audio.level_extension is not None
    await wait_until(lambda: any(m["type"] == "speaker" for m in harness.seen["p0"]), 5)
    speakers = [m["peer_id"] for m in harness.seen["p2"] if m["type"] == "speaker"]
    assert speakers[-1] == "p1"


async def test_screen_share_is_a_second_video_in_its_own_slot(harness: Harness) -> None:
    host = await harness.add(0, kind="host")
    expert = await harness.add(1, kind="expert")
    await grows(host, "p1")
    document = (235, 128, 128)  # a white "document"
    expert.share_screen(document)
    await harness.engine.handle("p1", {"type": "screen", "active": True})
    await wait_until(lambda: "p1#screen" in host.slot_owner, 5)
    await grows(host, "p1#screen", by=10)
    assert close_to(host.received_from("p1#screen").last_yuv, document)
    assert close_to(host.received_from("p1").last_yuv, COLOURS[1])  # the camera carries on
    listed = next(p for p in last(harness, "p0", "participants")["participants"] if p["peer_id"] == "p1")
    assert listed["screen_sharing"] is True
    await harness.engine.handle("p1", {"type": "screen", "active": False})
    await wait_until(lambda: "p1#screen" not in host.slot_owner, 5)


async def test_audio_only_on_request_keeps_every_voice_and_survives_a_reconnection(harness: Harness) -> None:
    host = await harness.add(0, kind="host")
    expert = await harness.add(1)
    await grows(expert, "p0")
    await harness.engine.handle("p1", {"type": "audio_only", "on": True})
    told = last(harness, "p1", "bandwidth")
    assert told["not_shown"] == ["p0"] and told["paused"] == [] and not told["audio_only"]
    await stays(expert, "p0")
    await grows(expert, "p0", "audio", by=25)
    await grows(host, "p1")  # what it sends is not changed by what it receives

    # The choice is kept when its page reconnects.
    await harness.engine.disconnected("p1")
    await expert.close()
    await harness.engine.join("room-1", "p1", {"name": "客户1", "role": "expert", "kind": "expert"})
    assert last(harness, "p1", "joined")["audio_only"] is True
    again = MediaClient(1)
    harness.clients["p1"] = again
    await harness.connect("p1", again)
    await grows(again, "p0", "audio", by=25)
    await stays(again, "p0")

    await harness.engine.handle("p1", {"type": "audio_only", "on": False})
    await grows(again, "p0")
    assert last(harness, "p1", "bandwidth")["not_shown"] == []
    with pytest.raises(SignalingError) as refused:
        await harness.engine.handle("p1", {"type": "audio_only", "on": "yes"})
    assert refused.value.code == "bad_message"


async def test_a_person_in_the_lobby_writes_to_the_hosts_and_a_host_answers_them_alone(harness: Harness) -> None:
    await harness.add(0, kind="host")
    await harness.add(1, kind="expert")
    await harness.moderate("p0", "admit", peer_id="p1")
    await harness.add(2, kind="party")
    await harness.add(3, kind="party")

    def chats(peer_id: str) -> list[tuple[str, str, str | None]]:
        return [(m["from"], m["text"], m.get("lobby")) for m in harness.seen[peer_id] if m["type"] == "chat"]

    await harness.engine.handle("p2", {"type": "chat", "text": "我到了，还要等多久？"})
    await harness.engine.handle("p0", {"type": "chat", "text": "专家马上到，请稍候", "to": "p2"})
    conversation = [("p2", "我到了，还要等多久？", "p2"), ("p0", "专家马上到，请稍候", "p2")]
    assert chats("p0") == conversation and chats("p2") == conversation
    assert chats("p1") == [] and chats("p3") == []  # the expert, and the other party waiting

    for sender, to, code in (("p0", "p1", "bad_message"), ("p0", ["p2"], "bad_message"), ("p1", "p2", "forbidden"),
                             ("p2", "p3", "forbidden")):
        with pytest.raises(SignalingError) as refused:
            await harness.engine.handle(sender, {"type": "chat", "text": "你好", "to": to})
        assert refused.value.code == code
    await harness.moderate("p0", "admit", peer_id="p2")
    await harness.engine.handle("p2", {"type": "chat", "text": "谢谢"})
    assert chats("p1")[-1] == ("p2", "谢谢", None) and chats("p3") == []
