"""The rooms of one process: membership, the lobby, moderation, chat, caucus, recording consent
and who is speaking, driving the media router (`signaling/media/router.py`) that forwards their media.

The rooms speak only in messages (plain dicts): `emit(peer_id, message)` to participants and
`record(room_id, event)` for the durable facts (joins, leaves, admissions, removals, chat, the
end), so that they run in the web process or in a media worker process alike. Who may receive
whom follows `signaling/room/state.py`; after every change the rooms tell the router, which links
and unlinks the forwarding to match.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiortc import RTCIceServer

from signaling.errors import SignalingError
from signaling.media.router import SLOTS, MediaRouter, PublisherRecording
from signaling.room import messages
from signaling.room.state import ADMITTED_ON_JOIN, Member, Room

logger = logging.getLogger(__name__)
Emit = Callable[[str, dict[str, Any]], Awaitable[None]]
Record = Callable[[str, dict[str, Any]], Awaitable[None]]
RECONNECT_TIMEOUT_S = 30.0
SPEAKER_INTERVAL_S = 0.5
SPEAKING_LEVEL = 60  # RFC 6464 level (-dBov) below which someone counts as speaking


async def no_record(room_id: str, event: dict[str, Any]) -> None:
    """Keep no record of a room's events (tests and benchmarks)."""
    return None


class Rooms:
    """All rooms of this process, and the router that carries their media."""

    def __init__(
        self, emit: Emit, ice_servers: list[RTCIceServer] | None = None, *,
        record: Record = no_record, reconnect_timeout_s: float = RECONNECT_TIMEOUT_S,
        recordings_dir: Path | None = None, on_overload: Callable[[bool], Awaitable[None]] | None = None,
    ) -> None:
        """`on_overload(overloaded)`: this process began or ceased to shed video (the hosts are
        told here; a media worker tells the web process, which then places new rooms elsewhere)."""
        self._emit = emit
        self._on_overload = on_overload
        self._recordings_dir = recordings_dir
        self._recorders: dict[str, dict[str, PublisherRecording]] = {}
        self._record = record
        self._reconnect_timeout_s = reconnect_timeout_s
        self.rooms: dict[str, Room] = {}
        self.router = MediaRouter(emit, ice_servers, on_connected=self._peer_connected,
                                  on_closed=self.disconnected, on_link=self._link_changed,
                                  on_overload=self._overload_changed)
        self._room_of: dict[str, str] = {}
        self._expiry: dict[str, asyncio.Task[None]] = {}
        self._speakers: dict[str, str | None] = {}
        self._speaker_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ arrivals and departures

    async def join(self, room_id: str, peer_id: str, info: dict[str, Any]) -> None:
        """A participant arrives, or comes back within the reconnection timeout."""
        room = self.rooms.setdefault(room_id, Room(room_id))
        if self._speaker_task is None:
            self._speaker_task = asyncio.create_task(self._watch_speakers(), name="active-speaker")
        member = room.members.get(peer_id)
        resumed = member is not None
        # "readmitted": the room's record says the host admitted them before the room restarted
        # (its media worker or its node died).
        info = dict(info)
        readmitted = bool(info.pop("readmitted", False))
        if member is None:
            admitted = readmitted or info.get("kind") in ADMITTED_ON_JOIN
            member = Member(peer_id=peer_id, info=info, admitted=admitted)
            room.members[peer_id] = member
            self._room_of[peer_id] = room_id
        else:
            await self.router.drop(peer_id)
            member.connected, member.reconnecting = True, False
        expiry = self._expiry.pop(peer_id, None)
        if expiry is not None:
            expiry.cancel()
        await self._emit(peer_id, {
            "type": "joined", "peer_id": peer_id, "slots": SLOTS, "resumed": resumed,
            "admitted": member.admitted, "audio_muted": member.audio_muted or member.held_mute,
            "video_muted": member.video_muted, "audio_only": member.audio_only, "recording": room.recording,
            "in_caucus": room.host_side(member) if room.caucus is not None else None,
        })
        if not member.admitted:
            await self._emit(peer_id, {"type": "lobby"})
        if member.is_moderator and self.router.shedding.overloaded:
            await self._emit(peer_id, {"type": "server_busy", "busy": True})
        await self._record(room_id, {"kind": "resume" if resumed else "join", "peer_id": peer_id, "info": info})
        await self._changed(room)

    async def disconnected(self, peer_id: str) -> None:
        """The participant's connection dropped: keep their seat for the reconnection timeout."""
        room = self._room(peer_id)
        if room is None:
            return
        member = room.members[peer_id]
        member.connected, member.reconnecting = False, True
        await self.router.drop(peer_id)
        self._expiry[peer_id] = asyncio.create_task(self._expire(peer_id))
        await self._changed(room)

    async def leave(self, peer_id: str, reason: str = "left") -> None:
        """The participant is gone for good: their seat and media go now."""
        room = self._room(peer_id)
        if room is None:
            return
        expiry = self._expiry.pop(peer_id, None)
        if expiry is not None and expiry is not asyncio.current_task():
            expiry.cancel()
        await self.router.drop(peer_id)
        if room.members.pop(peer_id, None) is None:
            return  # a concurrent leave (a removal and a goodbye at once) got here first
        self._room_of.pop(peer_id, None)
        if room.caucus is not None and peer_id in room.caucus:
            room.caucus = room.caucus - {peer_id}
        await self._record(room.room_id, {"kind": "leave", "peer_id": peer_id, "reason": reason})
        if room.members:
            await self._changed(room)
        else:
            await self._stop_recording(room)
            if self.rooms.get(room.room_id) is room:
                del self.rooms[room.room_id]

    async def _expire(self, peer_id: str) -> None:
        await asyncio.sleep(self._reconnect_timeout_s)
        room = self._room(peer_id)
        if room is not None and room.members[peer_id].reconnecting:
            await self.leave(peer_id, reason="timeout")

    async def close(self) -> None:
        """Close every peer (at shutdown)."""
        if self._speaker_task is not None:
            self._speaker_task.cancel()
        for peer_id in list(self._room_of):
            await self.leave(peer_id, reason="shutdown")
        await self.router.close()

    async def _link_changed(self, peer_id: str, weak: bool) -> None:
        """A participant's link became weak or well: the others see it on their tile."""
        room = self._room(peer_id)
        if room is not None and room.members[peer_id].weak_link != weak:
            room.members[peer_id].weak_link = weak
            await self._changed(room, relink=False)

    async def _overload_changed(self, overloaded: bool) -> None:
        """This process began or ceased to shed video: every host here is told, once each way."""
        for room in list(self.rooms.values()):
            for member in room.members.values():
                if member.connected and member.is_moderator:
                    await self._emit(member.peer_id, {"type": "server_busy", "busy": overloaded})
        if self._on_overload is not None:
            await self._on_overload(overloaded)

    async def _watch_speakers(self) -> None:
        """Tell each room who is speaking, from the audio levels in the packets (no decoding)."""
        while True:
            await asyncio.sleep(SPEAKER_INTERVAL_S)
            for room in list(self.rooms.values()):
                speaker = self.router.loudest(room.members, below=SPEAKING_LEVEL)
                if speaker is not None and speaker != self._speakers.get(room.room_id):
                    self._speakers[room.room_id] = speaker
                    self.router.heard(room.members, speaker)
                    await self._broadcast(room, {"type": "speaker", "peer_id": speaker})

    # ------------------------------------------------------------ messages

    async def handle(self, peer_id: str, raw: dict[str, Any]) -> None:
        """One message from a participant; SignalingError for a bad one (signaling/room/messages.py)."""
        room = self._room(peer_id)
        if room is None:
            raise SignalingError("join first", code="bad_state")
        member = room.members[peer_id]
        message = messages.parse(raw)
        match message:
            case messages.Offer(sdp=sdp):
                await self._offer(room, member, sdp)
            case messages.Candidate():
                await self.router.add_candidate(peer_id, message.candidate, message.sdpMid, message.sdpMLineIndex)
            case messages.Mute(audio=audio, video=video):
                if audio is not None:
                    member.audio_muted = audio
                    if not audio:
                        member.held_mute = False  # unmuting is always the participant's own choice
                if video is not None:
                    member.video_muted = video
                await self._changed(room, relink=False, about=member)
            case messages.View(pixels=pixels):
                self.router.show_sizes(peer_id, list(pixels))
            case messages.AudioOnly(on=on):
                member.audio_only = on
                await self.router.audio_only(peer_id, on)
            case messages.Hand(raised=raised):
                member.hand_raised = raised
                await self._changed(room, relink=False, about=member)
            case messages.Screen(active=active):
                member.screen_sharing = active
                if active:
                    self.router.screen_started(peer_id)
                await self._changed(room, about=member)
            case messages.Chat(text=text, to=to):
                await self._chat(room, member, text.strip(), to)
            case messages.Consent(agree=agree):
                await self._consent(room, member, agree)
            case messages.Moderate():
                if not member.is_moderator:
                    raise SignalingError("only the host may do this", code="forbidden")
                await self._moderate(room, member, message)
            case messages.Leave():
                await self.leave(peer_id)

    async def _chat(self, room: Room, member: Member, text: str, to: str | None) -> None:
        """To everyone on the sender's side of the room; or, between a person waiting in the lobby
        and the hosts, to those only (`lobby`: the waiting person's peer id), whoever writes."""
        if not text:
            raise SignalingError("empty chat message", code="bad_message")
        chat: dict[str, Any] = {"type": "chat", "from": member.peer_id, "name": member.info.get("name", ""),
                                "role": member.info.get("role", ""), "text": text, "at": time.time()}
        if to is not None:
            waiting = room.members.get(to)
            if not member.is_moderator:
                raise SignalingError("only the host may write to one person", code="forbidden")
            if waiting is None or waiting.admitted:
                raise SignalingError("'to' must name a person waiting in the lobby", code="bad_message")
            chat["lobby"] = waiting.peer_id
        elif not member.admitted:
            chat["lobby"] = member.peer_id
        if "lobby" in chat:
            readers = [m for m in room.members.values() if m.is_moderator or m.peer_id == chat["lobby"]]
        else:
            readers = [m for m in room.members.values()
                       if m.admitted and (room.caucus is None or room.host_side(m) == room.host_side(member))]
        for reader in readers:
            await self._emit(reader.peer_id, chat)
        await self._record(room.room_id, {"kind": "chat", "peer_id": member.peer_id, "text": text,
                                          **({"lobby": chat["lobby"]} if "lobby" in chat else {})})

    async def _moderate(self, room: Room, host: Member, message: messages.Moderate) -> None:
        action = message.action
        if action == "end":
            for peer_id in list(room.members):
                await self._emit(peer_id, {"type": "ended"})
            await self._record(room.room_id, {"kind": "end", "peer_id": host.peer_id})
            for peer_id in list(room.members):
                await self.leave(peer_id, reason="ended")
            return
        if action == "caucus_start":
            chosen = message.peer_ids
            if chosen is None or not all(p in room.members for p in chosen):
                raise SignalingError("peer_ids must list members of the room", code="bad_message")
            room.caucus = frozenset(chosen) | {host.peer_id}
            await self._record(room.room_id, {"kind": "caucus_start", "peer_ids": sorted(room.caucus), "by": host.peer_id})
            await self._changed(room)
            return
        if action == "caucus_end":
            room.caucus = None
            await self._record(room.room_id, {"kind": "caucus_end", "by": host.peer_id})
            await self._changed(room)
            return
        if action == "recording_start":
            await self._ask_consent(room, host)
            return
        if action == "recording_stop":
            await self._stop_recording(room, tell=True)
            return
        if action == "lobby_message":
            if message.text is None or not message.text.strip():
                raise SignalingError("'text' is missing", code="bad_message")
            text = message.text.strip()
            targets = [message.peer_id] if message.peer_id else [m.peer_id for m in room.members.values() if not m.admitted]
            for peer_id in targets:
                target = room.members.get(peer_id)
                if target is None or target.admitted:
                    raise SignalingError("that person is not waiting in the lobby", code="bad_message")
                await self._emit(peer_id, {"type": "lobby_message", "text": text, "from": host.info.get("name", "")})
            return
        target = room.members.get(message.peer_id or "")
        if target is None:
            raise SignalingError("no such participant in this room", code="bad_message")
        if action == "admit":
            target.admitted = True
            await self._emit(target.peer_id, {"type": "admitted"})
            await self._record(room.room_id, {"kind": "admit", "peer_id": target.peer_id, "by": host.peer_id})
            await self._changed(room)
        elif action == "mute":
            target.held_mute = True
            await self._emit(target.peer_id, {"type": "force_mute"})
            await self._record(room.room_id, {"kind": "mute", "peer_id": target.peer_id, "by": host.peer_id})
            await self._changed(room, relink=False)
        elif action == "ask_unmute":
            await self._emit(target.peer_id, {"type": "unmute_request", "from": host.info.get("name", "")})
        elif action == "remove":  # for now (back to the lobby if they return), or with their link revoked
            await self._emit(target.peer_id, {"type": "removed", "revoked": message.revoke})
            await self._record(room.room_id, {"kind": "remove", "peer_id": target.peer_id, "by": host.peer_id,
                                              "revoke": message.revoke})
            await self.leave(target.peer_id, reason="removed")

    # ------------------------------------------------------------ recording with consent

    async def _ask_consent(self, room: Room, host: Member) -> None:
        if self._recordings_dir is None:
            raise SignalingError("recording is not available on this server", code="unavailable")
        if room.recording or room.consent is not None:
            raise SignalingError("recording is already on or being asked for", code="bad_state")
        room.consent = {m.peer_id: None for m in room.parties()}
        pending = list(room.consent)
        if not pending:  # nobody to ask
            room.consent, room.recording = None, True
        await self._record(room.room_id, {"kind": "recording_requested", "peer_id": host.peer_id})
        for peer_id in pending:
            await self._emit(peer_id, {"type": "consent_request", "from": host.info.get("name", "")})
        if room.recording:
            await self._recording_started(room)
        else:
            await self._broadcast(room, {"type": "recording", "active": False, "pending": len(pending)})

    async def _consent(self, room: Room, member: Member, agree: bool) -> None:
        # Decide before the first await: two parties may answer at the same moment.
        if room.consent is None or member.peer_id not in room.consent:
            raise SignalingError("nobody asked for your consent", code="bad_state")
        room.consent[member.peer_id] = agree
        everyone = agree and all(room.consent.values())
        if not agree or everyone:
            room.consent = None
        room.recording = room.recording or everyone
        await self._record(room.room_id, {"kind": "consent", "peer_id": member.peer_id, "agree": agree, "at": time.time()})
        if not agree:
            await self._broadcast(room, {"type": "recording", "active": False, "declined_by": member.info.get("name", "")})
        elif everyone:
            await self._recording_started(room)

    async def _recording_started(self, room: Room) -> None:
        await self._record(room.room_id, {"kind": "recording_started"})
        await self._broadcast(room, {"type": "recording", "active": True})
        await self._changed(room, relink=False)

    async def _sync_recorders(self, room: Room) -> None:
        """While recording: one recorder per publisher in the room."""
        assert self._recordings_dir is not None
        recorders = self._recorders.setdefault(room.room_id, {})

        def wanted() -> set[str]:
            return {m.peer_id for m in room.members.values()
                    if room.in_room(m) and not m.is_observer and self.router.has(m.peer_id)}

        for peer_id in [p for p in recorders if p not in wanted()]:
            recorder = recorders.pop(peer_id, None)
            if recorder is not None:
                await self._finish(room, peer_id, recorder)
        for peer_id in wanted() - set(recorders):  # no await in this loop: the room cannot change
            self._recordings_dir.mkdir(parents=True, exist_ok=True)
            path = self._recordings_dir / f"session-{room.room_id}-{peer_id}-{int(time.time() * 1000)}.webm"
            recorders[peer_id] = self.router.recording(peer_id, path)
            recorders[peer_id].start()  # opens its file in the background, at the first video frame

    async def _stop_recording(self, room: Room, *, tell: bool = False) -> None:
        """Stop recording; with `tell`, everyone in the room hears so before the files are closed
        (which takes a while on a busy machine: before, the indicator stayed on meanwhile)."""
        recorders = self._recorders.pop(room.room_id, {})
        room.recording, room.consent = False, None
        if tell:
            await self._broadcast(room, {"type": "recording", "active": False})
            await self._changed(room, relink=False)
        for peer_id, recorder in recorders.items():
            await self._finish(room, peer_id, recorder)

    async def _finish(self, room: Room, peer_id: str, recorder: PublisherRecording) -> None:
        await self._record(room.room_id, {"kind": "recording", "peer_id": peer_id, **await recorder.stop()})

    async def _broadcast(self, room: Room, message: dict[str, Any]) -> None:
        for member in room.members.values():
            if member.connected:
                await self._emit(member.peer_id, message)

    # ------------------------------------------------------------ media

    async def _offer(self, room: Room, member: Member, sdp: str) -> None:
        try:
            answer = await self.router.connect(member.peer_id, sdp, audio_only=member.audio_only, held=member.held_mute)
        except SignalingError as error:
            if error.code == "unsupported_codec":  # the host sees why this person cannot join
                member.problem = error.code
                await self._changed(room, relink=False)
            raise
        member.problem = None
        await self._emit(member.peer_id, {"type": "answer", "sdp": answer})
        await self._changed(room)

    async def _peer_connected(self, peer_id: str) -> None:
        room = self._room(peer_id)
        if room is not None:
            await self._changed(room)  # what it receives is linked now

    async def _changed(self, room: Room, *, relink: bool = True, about: Member | None = None) -> None:
        """Make the forwarding match the room's rules, and tell everyone what changed (what
        changed `about` a person in the lobby: only the hosts, who alone see the lobby)."""
        if room.recording:
            await self._sync_recorders(room)
        if relink:
            for subscriber_id, subscriber in room.members.items():
                await self.router.route(subscriber_id, {
                    publisher_id: publisher.screen_sharing for publisher_id, publisher in room.members.items()
                    if room.receives(subscriber, publisher)})
        lobby = about is not None and not about.admitted
        for member in room.members.values():
            self.router.hold(member.peer_id, member.held_mute)
            if member.connected and (not lobby or member.is_moderator or member is about):
                await self._emit(member.peer_id, {
                    "type": "participants", "participants": room.listed_for(member),
                    "caucus": room.caucus is not None, "recording": room.recording,
                    "in_caucus": room.host_side(member) if room.caucus is not None else None,
                })

    def _room(self, peer_id: str) -> Room | None:
        room_id = self._room_of.get(peer_id)
        return self.rooms.get(room_id) if room_id is not None else None

    def stats(self) -> dict[str, Any]:
        """Counts for monitoring and tests."""
        return {"rooms": len(self.rooms), "room_ids": sorted(self.rooms), **self.router.stats()}
