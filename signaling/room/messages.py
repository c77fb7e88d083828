"""The messages a participant sends in a room, one type each, as signaling/PROTOCOL.md lists them
("Client → server"; tests/signaling/test_messages.py checks the two agree).

`parse` turns a decoded JSON object into its type, checking every field's type and size, or
raises SignalingError `bad_message` naming the field. The room (signaling/room/rooms.py) then works
with typed values only.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from signaling.errors import SignalingError
from signaling.media.router import SLOTS

HostAction = Literal[
    "admit", "lobby_message", "mute", "ask_unmute", "remove", "end", "caucus_start", "caucus_end",
    "recording_start", "recording_stop",
]
PeerId = Annotated[str, Field(min_length=1, max_length=64)]
Pixels = Annotated[int, Field(ge=0, le=100_000_000)]


class _Message(BaseModel):
    # Strict: "yes" is not true and 1 is not a string; fields the protocol does not name are ignored.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class Offer(_Message):
    type: Literal["offer"]
    sdp: str = Field(min_length=1, max_length=200_000)


class Candidate(_Message):
    type: Literal["candidate"]
    candidate: str = Field(max_length=2000)  # "" for the end of candidates
    sdpMid: str | None = Field(None, max_length=32)
    sdpMLineIndex: int | None = Field(None, ge=0, le=1000)


class Mute(_Message):
    type: Literal["mute"]
    audio: bool | None = None
    video: bool | None = None


class Hand(_Message):
    type: Literal["hand"]
    raised: bool


class Screen(_Message):
    type: Literal["screen"]
    active: bool


class Chat(_Message):
    type: Literal["chat"]
    text: str = Field(min_length=1, max_length=2000)
    to: PeerId | None = None


class Consent(_Message):
    type: Literal["consent"]
    agree: bool


class Moderate(_Message):
    type: Literal["moderate"]
    action: HostAction
    peer_id: PeerId | None = None
    text: str | None = Field(None, min_length=1, max_length=500)
    peer_ids: list[PeerId] | None = Field(None, max_length=SLOTS + 1)
    revoke: bool = False


class View(_Message):
    type: Literal["view"]
    pixels: list[Pixels | None] = Field(max_length=SLOTS)


class AudioOnly(_Message):
    type: Literal["audio_only"]
    on: bool


class Leave(_Message):
    type: Literal["leave"]


ClientMessage = Offer | Candidate | Mute | Hand | Screen | Chat | Consent | Moderate | View | AudioOnly | Leave
TYPES: dict[str, type[_Message]] = {
    model.model_fields["type"].annotation.__args__[0]: model  # type: ignore[union-attr]
    for model in (Offer, Candidate, Mute, Hand, Screen, Chat, Consent, Moderate, View, AudioOnly, Leave)
}


def parse(message: dict[str, Any]) -> ClientMessage:
    """The message as its type; SignalingError (`unknown_type`, `bad_message` naming the field)."""
    model = TYPES.get(message.get("type"))  # type: ignore[arg-type]
    if model is None:
        raise SignalingError(f"unknown message type {message.get('type')!r}", code="unknown_type")
    try:
        return model.model_validate(message)  # type: ignore[return-value]
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "message"
        raise SignalingError(f"'{field}': {error['msg']}", code="bad_message") from None
