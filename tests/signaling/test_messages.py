"""Every message a participant sends has a type (signaling/room/messages.py) that agrees with
PROTOCOL.md, and a value of the wrong type is refused naming its field, never raised as a fault."""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest

from signaling.errors import SignalingError
from signaling.room import messages
from tests.signaling.test_forwarding import Harness

PROTOCOL = (Path(__file__).resolve().parents[2] / "signaling" / "PROTOCOL.md").read_text()


def test_every_client_message_in_the_protocol_has_a_type_with_the_fields_it_names() -> None:
    section = PROTOCOL.split("## Client → server", 1)[1].split("\n## ", 1)[0]
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \|([^|]*)\|", section, re.MULTILINE)}
    assert rows.keys() == messages.TYPES.keys()
    for kind, model in messages.TYPES.items():
        named = set(re.findall(r"`(\w+)`", rows[kind]))
        assert set(model.model_fields) - {"type"} <= named, (kind, set(model.model_fields) - named)


@pytest.mark.parametrize("message, code, field", [
    ({"type": "hand", "raised": "maybe"}, "bad_message", "raised"),
    ({"type": "mute", "audio": "yes"}, "bad_message", "audio"),
    ({"type": "mute", "video": 1}, "bad_message", "video"),
    ({"type": "moderate", "action": "remove", "peer_id": ["p1"]}, "bad_message", "peer_id"),
    ({"type": "moderate", "action": "admit", "peer_id": {"a": 1}}, "bad_message", "peer_id"),
    ({"type": "moderate", "action": "explode"}, "bad_message", "action"),
    ({"type": "moderate", "action": "caucus_start", "peer_ids": "p1"}, "bad_message", "peer_ids"),
    ({"type": "chat", "text": 42}, "bad_message", "text"),
    ({"type": "chat", "text": "x" * 2001}, "bad_message", "text"),
    ({"type": "view", "pixels": [True]}, "bad_message", "pixels.0"),
    ({"type": "candidate", "candidate": "", "sdpMLineIndex": "0"}, "bad_message", "sdpMLineIndex"),
    ({"type": "screen"}, "bad_message", "active"),
    ({"type": "dance"}, "unknown_type", None),
])
def test_a_value_of_the_wrong_type_is_refused_naming_its_field(message: dict[str, Any], code: str, field: str | None) -> None:
    with pytest.raises(SignalingError) as refused:
        messages.parse(message)
    assert refused.value.code == code
    if field:
        assert str(refused.value).startswith(f"'{field}'")


def test_the_right_values_parse_to_their_type() -> None:
    assert messages.parse({"type": "hand", "raised": True}) == messages.Hand(type="hand", raised=True)
    moderate = messages.parse({"type": "moderate", "action": "remove", "peer_id": "p1", "revoke": True, "extra": 1})
    assert isinstance(moderate, messages.Moderate) and moderate.revoke is True and moderate.peer_id == "p1"


@pytest.fixture
async def harness() -> Any:
    h = Harness(reconnect_timeout_s=2.0)
    yield h
    await h.close()


async def test_bad_values_reach_the_room_as_errors_without_a_traceback_and_lobby_toggles_stay_with_the_hosts(
    harness: Harness, caplog: pytest.LogCaptureFixture,
) -> None:
    await harness.add(0, kind="host")
    await harness.add(1, kind="expert")
    await harness.add(2, kind="party")  # waits in the lobby
    caplog.set_level(logging.DEBUG)
    for bad in ({"type": "moderate", "action": "mute", "peer_id": ["p2"]}, {"type": "hand", "raised": "maybe"}):
        with pytest.raises(SignalingError) as refused:
            await harness.engine.handle("p0", bad)
        assert refused.value.code == "bad_message"
    assert "Traceback" not in caplog.text and "TypeError" not in caplog.text

    def lists(peer_id: str) -> int:
        return sum(1 for m in harness.seen[peer_id] if m["type"] == "participants")

    before = {p: lists(p) for p in ("p0", "p1", "p2")}
    await harness.engine.handle("p2", {"type": "hand", "raised": True})
    await harness.engine.handle("p2", {"type": "mute", "audio": True})
    assert lists("p0") == before["p0"] + 2 and lists("p2") == before["p2"] + 2  # the host, and the party itself
    assert lists("p1") == before["p1"]  # the expert in the room hears nothing of the lobby
