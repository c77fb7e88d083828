"""Rooms of one media process: who is in, who sees whom in which slot, and the messages.

The engine speaks only in messages (plain dicts) with the signaling layer, through `emit`,
so that it can run in the web process or in a media worker process alike.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Awaitable, Callable

from aiortc import RTCIceServer

from signaling.errors import SignalingError
from signaling.peers import SLOTS, ServerPeer, SlotSenders

logger = logging.getLogger(__name__)
Emit = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclasses.dataclass
class Member:
    """A participant in a room, as the room sees them."""

    peer_id: str
    room_id: str
    info: dict[str, Any]
    peer: ServerPeer | None = None
    audio_muted: bool = False
    video_muted: bool = False

    def public(self) -> dict[str, Any]:
        return {
            "peer_id": self.peer_id, **self.info,
            "audio_muted": self.audio_muted, "video_muted": self.video_muted,
            "connected": self.peer is not None,
        }


class MediaEngine:
    """All rooms of this process."""

    def __init__(self, emit: Emit, ice_servers: list[RTCIceServer] | None = None) -> None:
        self._emit = emit
        self._ice_servers = ice_servers or []
        self.members: dict[str, Member] = {}
        self.rooms: dict[str, set[str]] = {}

    async def join(self, room_id: str, peer_id: str, info: dict[str, Any]) -> None:
        """A participant enters a room (media follows with their offer)."""
        if peer_id in self.members:
            raise SignalingError("already joined", code="bad_state")
        self.members[peer_id] = Member(peer_id=peer_id, room_id=room_id, info=info)
        self.rooms.setdefault(room_id, set()).add(peer_id)
        await self._emit(peer_id, {"type": "joined", "peer_id": peer_id, "slots": SLOTS})
        await self._broadcast_participants(room_id)

    async def handle(self, peer_id: str, message: dict[str, Any]) -> None:
        """One message from a participant; SignalingError for a bad one."""
        member = self.members.get(peer_id)
        if member is None:
            raise SignalingError("join first", code="bad_state")
        kind = message.get("type")
        if kind == "offer":
            await self._offer(member, _text(message, "sdp", 200_000))
        elif kind == "candidate":
            if member.peer is None:
                raise SignalingError("send the offer before candidates", code="bad_state")
            index = message.get("sdpMLineIndex")
            await member.peer.add_candidate(
                _text(message, "candidate", 2000, allow_empty=True), message.get("sdpMid"),
                index if isinstance(index, int) else None,
            )
        elif kind == "mute":
            member.audio_muted = bool(message.get("audio", member.audio_muted))
            member.video_muted = bool(message.get("video", member.video_muted))
            await self._broadcast_participants(member.room_id)
        elif kind == "chat":
            text = _text(message, "text", 2000).strip()
            if not text:
                raise SignalingError("empty chat message", code="bad_message")
            chat = {"type": "chat", "from": peer_id, "name": member.info.get("name", ""),
                    "role": member.info.get("role", ""), "text": text, "at": time.time()}
            for other_id in self.rooms.get(member.room_id, ()):
                await self._emit(other_id, chat)
        elif kind == "leave":
            await self.leave(peer_id)
        else:
            raise SignalingError(f"unknown message type {kind!r}", code="unknown_type")

    async def leave(self, peer_id: str) -> None:
        """A participant leaves (or vanished): free their slots everywhere and close the peer."""
        member = self.members.pop(peer_id, None)
        if member is None:
            return
        room = self.rooms.get(member.room_id, set())
        room.discard(peer_id)
        if member.peer is not None:
            for other_id in room:
                other = self.members[other_id]
                if other.peer is not None:
                    _unlink(member.peer, other.peer)
                    _unlink(other.peer, member.peer)
            await member.peer.close()
        if not room:
            self.rooms.pop(member.room_id, None)
        else:
            for other_id in room:
                await self._send_slots(self.members[other_id])
            await self._broadcast_participants(member.room_id)

    async def close(self) -> None:
        """Close every peer (at shutdown)."""
        for peer_id in list(self.members):
            await self.leave(peer_id)

    def stats(self) -> dict[str, Any]:
        """Counts for monitoring and tests."""
        return {
            "rooms": len(self.rooms),
            "peers": sum(1 for m in self.members.values() if m.peer is not None),
            "forwarded_packets": sum(
                s.packets for m in self.members.values() if m.peer for slot in m.peer.slots for s in (slot.audio, slot.video)
            ),
        }

    async def _offer(self, member: Member, sdp: str) -> None:
        peer = ServerPeer(member.peer_id, self._ice_servers, self._peer_closed)
        try:
            answer = await peer.answer(sdp)
        except SignalingError:
            await peer.close()
            raise
        member.peer = peer
        await self._emit(member.peer_id, {"type": "answer", "sdp": answer})
        for other_id in self.rooms[member.room_id]:
            other = self.members[other_id]
            if other is member or other.peer is None:
                continue
            _link(subscriber=peer, publisher=other.peer)
            _link(subscriber=other.peer, publisher=peer)
            await self._send_slots(other)
        await self._send_slots(member)
        await self._broadcast_participants(member.room_id)

    async def _peer_closed(self, peer: ServerPeer) -> None:
        member = self.members.get(peer.id)
        if member is not None and member.peer is peer:
            await self.leave(peer.id)

    async def _send_slots(self, member: Member) -> None:
        if member.peer is not None:
            await self._emit(member.peer_id, {
                "type": "slots", "slots": [slot.participant_id for slot in member.peer.slots],
            })

    async def _broadcast_participants(self, room_id: str) -> None:
        people = [self.members[p].public() for p in sorted(self.rooms.get(room_id, ()))]
        for peer_id in self.rooms.get(room_id, ()):
            await self._emit(peer_id, {"type": "participants", "participants": people})


def _link(subscriber: ServerPeer, publisher: ServerPeer) -> None:
    """Show the publisher in a free slot of the subscriber."""
    if any(slot.participant_id == publisher.id for slot in subscriber.slots):
        return
    slot = subscriber.free_slot()
    if slot is None:
        logger.warning("peer %s has no free slot for %s", subscriber.id, publisher.id)
        return
    slot.participant_id = publisher.id
    slot.sources = {"audio": publisher.audio, "video": publisher.video}
    publisher.audio.subscribe(slot.audio)
    publisher.video.subscribe(slot.video)


def _unlink(subscriber: ServerPeer, publisher: ServerPeer) -> None:
    for slot in subscriber.slots:
        if slot.participant_id == publisher.id:
            _free(slot, publisher)


def _free(slot: SlotSenders, publisher: ServerPeer) -> None:
    publisher.audio.unsubscribe(slot.audio)
    publisher.video.unsubscribe(slot.video)
    slot.participant_id = None
    slot.sources = {}


def _text(message: dict[str, Any], field: str, max_length: int, *, allow_empty: bool = False) -> str:
    value = message.get(field)
    if not isinstance(value, str) or (not value and not allow_empty) or len(value) > max_length:
        raise SignalingError(f"'{field}' must be a string of at most {max_length} characters", code="bad_message")
    return value
