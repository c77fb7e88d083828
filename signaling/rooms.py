"""The media engine of one process: rooms, their members' peers, and the room's messages.

The engine speaks only in messages (plain dicts): `emit(peer_id, message)` to participants and
`record(room_id, event)` for the durable facts (joins, leaves, admissions, removals, chat, the
end), so that it runs in the web process or in a media worker process alike. Who receives whom
follows `signaling/room_state.py`; after every change the engine links and unlinks the
forwarding so that it matches.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiortc import RTCIceServer

from signaling import messages
from signaling.bandwidth import AUDIO_BPS, publisher_target_bps
from signaling.errors import SignalingError
from signaling.forwarding import PublishedStream
from signaling.peers import SCREEN, SLOTS, ServerPeer
from signaling.recording import PublisherRecording
from signaling.room_state import ADMITTED_ON_JOIN, Member, Room

logger = logging.getLogger(__name__)
Emit = Callable[[str, dict[str, Any]], Awaitable[None]]
Record = Callable[[str, dict[str, Any]], Awaitable[None]]
RECONNECT_TIMEOUT_S = 30.0
SPEAKER_INTERVAL_S = 0.5
STEER_EVERY_TICKS = 2  # publishers' bitrate targets once a second
SPEAKING_LEVEL = 60  # RFC 6464 level (-dBov) below which someone counts as speaking


async def _no_record(room_id: str, event: dict[str, Any]) -> None:
    return None


class MediaEngine:
    """All rooms of this process."""

    def __init__(
        self, emit: Emit, ice_servers: list[RTCIceServer] | None = None, *,
        record: Record = _no_record, reconnect_timeout_s: float = RECONNECT_TIMEOUT_S,
        recordings_dir: Path | None = None,
    ) -> None:
        self._emit = emit
        self._recordings_dir = recordings_dir
        self._recorders: dict[str, dict[str, PublisherRecording]] = {}
        self._record = record
        self._ice_servers = ice_servers or []
        self._reconnect_timeout_s = reconnect_timeout_s
        self.rooms: dict[str, Room] = {}
        self.peers: dict[str, ServerPeer] = {}
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
            await self._drop_peer(peer_id)
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
        await self._record(room_id, {"kind": "resume" if resumed else "join", "peer_id": peer_id, "info": info})
        await self._changed(room)

    async def disconnected(self, peer_id: str) -> None:
        """The participant's connection dropped: keep their seat for the reconnection timeout."""
        room = self._room(peer_id)
        if room is None:
            return
        member = room.members[peer_id]
        member.connected, member.reconnecting = False, True
        await self._drop_peer(peer_id)
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
        await self._drop_peer(peer_id)
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

    async def _bandwidth_changed(self, peer: ServerPeer) -> None:
        await self._emit(peer.id, {"type": "bandwidth", "audio_only": peer.downlink.audio_only,
                                   "paused": peer.paused_video, "not_shown": peer.not_shown,
                                   "estimate_bps": peer.downlink.estimate_bps})

    async def _link_changed(self, peer: ServerPeer) -> None:
        """Tell a participant that its link is weak or well again, and the room whose it is."""
        down, up = peer.downlink_quality.weak, peer.uplink_quality.weak
        await self._emit(peer.id, {"type": "link", "downlink": "weak" if down else "good",
                                   "uplink": "weak" if up else "good"})
        room = self._room(peer.id)
        if room is not None and room.members[peer.id].weak_link != (down or up):
            room.members[peer.id].weak_link = down or up
            await self._changed(room, relink=False)

    def _steer_publishers(self) -> None:
        """Ask each publisher's browser to send what its weakest subscriber with video can take
        (REMB), so that a participant on a slow link still gets every camera; a camera in
        simulcast layers sends them all (the weak get the small one)."""
        for room in self.rooms.values():
            peers = [peer for peer_id in room.members if (peer := self.peers.get(peer_id)) is not None]
            for publisher in peers:
                if publisher.video.ssrc is None:
                    continue
                watching = [p for p in peers if p is not publisher and any(
                    slot.participant_id == publisher.id and not slot.video.paused for slot in p.slots)]
                target = publisher_target_bps([p.downlink.video_share_bps() for p in watching],
                                              simulcast=publisher.simulcast)
                sharing = publisher.screen.ssrc is not None and any(
                    slot.participant_id == f"{publisher.id}{SCREEN}" and not slot.video.paused
                    for p in peers if p is not publisher for slot in p.slots)
                publisher.send_remb(target * (2 if sharing else 1) + AUDIO_BPS)

    async def _watch_speakers(self) -> None:
        """Tell each room who is speaking, from the audio levels in the packets (no decoding);
        every second, steer the publishers' bitrates."""
        ticks = 0
        while True:
            await asyncio.sleep(SPEAKER_INTERVAL_S)
            ticks += 1
            if ticks % STEER_EVERY_TICKS == 0:
                for each in list(self.peers.values()):
                    await each.bandwidth_tick()
                for each in list(self.peers.values()):
                    await each.show_videos()  # a new speaker's video on a link that carries only some
                    each.choose_layers()
                    each.send_reports()
                    if each.judge_links():
                        await self._link_changed(each)
                self._steer_publishers()
            for room in list(self.rooms.values()):
                loudest, speaker = SPEAKING_LEVEL, None
                for peer_id in room.members:
                    peer = self.peers.get(peer_id)
                    if peer is None:
                        continue
                    if peer.audio.loudest < loudest:
                        loudest, speaker = peer.audio.loudest, peer_id
                    peer.audio.loudest = 127
                if speaker is not None and speaker != self._speakers.get(room.room_id):
                    self._speakers[room.room_id] = speaker
                    self._heard(room, speaker)
                    await self._broadcast(room, {"type": "speaker", "peer_id": speaker})

    def _heard(self, room: Room, speaker: str) -> None:
        # (Not inline in _watch_speakers: a loop variable in that long-lived frame would keep a
        # peer that has left alive.)
        for peer_id in room.members:
            peer = self.peers.get(peer_id)
            if peer is not None:
                peer.heard(speaker)

    # ------------------------------------------------------------ messages

    async def handle(self, peer_id: str, raw: dict[str, Any]) -> None:
        """One message from a participant; SignalingError for a bad one (signaling/messages.py)."""
        room = self._room(peer_id)
        if room is None:
            raise SignalingError("join first", code="bad_state")
        member = room.members[peer_id]
        message = messages.parse(raw)
        match message:
            case messages.Offer(sdp=sdp):
                await self._offer(room, member, sdp)
            case messages.Candidate():
                peer = self.peers.get(peer_id)
                if peer is None:
                    raise SignalingError("send the offer before candidates", code="bad_state")
                await peer.add_candidate(message.candidate, message.sdpMid, message.sdpMLineIndex)
            case messages.Mute(audio=audio, video=video):
                if audio is not None:
                    member.audio_muted = audio
                    if not audio:
                        member.held_mute = False  # unmuting is always the participant's own choice
                if video is not None:
                    member.video_muted = video
                await self._changed(room, relink=False, about=member)
            case messages.View(pixels=pixels):
                peer = self.peers.get(peer_id)
                if peer is not None:
                    peer.show_sizes(list(pixels))
            case messages.AudioOnly(on=on):
                member.audio_only = on
                peer = self.peers.get(peer_id)
                if peer is not None:
                    peer.audio_only_chosen = on
                    await peer.show_videos()
            case messages.Hand(raised=raised):
                member.hand_raised = raised
                await self._changed(room, relink=False, about=member)
            case messages.Screen(active=active):
                member.screen_sharing = active
                if active and member.peer_id in self.peers:
                    self.peers[member.peer_id].screen.want_keyframe()
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
            await self._stop_recording(room)
            await self._broadcast(room, {"type": "recording", "active": False})
            await self._changed(room, relink=False)
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
                    if room.in_room(m) and not m.is_observer and m.peer_id in self.peers}

        for peer_id in [p for p in recorders if p not in wanted()]:
            recorder = recorders.pop(peer_id, None)
            if recorder is not None:
                await self._finish(room, peer_id, recorder)
        for peer_id in wanted() - set(recorders):  # no await in this loop: the room cannot change
            peer = self.peers[peer_id]
            self._recordings_dir.mkdir(parents=True, exist_ok=True)
            path = self._recordings_dir / f"session-{room.room_id}-{peer_id}-{int(time.time() * 1000)}.webm"
            recorders[peer_id] = PublisherRecording(path, peer.audio, peer.video)
            recorders[peer_id].start()  # opens its file in the background, at the first video frame

    async def _stop_recording(self, room: Room) -> None:
        room.recording = False
        room.consent = None
        for peer_id, recorder in self._recorders.pop(room.room_id, {}).items():
            await self._finish(room, peer_id, recorder)

    async def _finish(self, room: Room, peer_id: str, recorder: PublisherRecording) -> None:
        await self._record(room.room_id, {"kind": "recording", "peer_id": peer_id, **await recorder.stop()})

    async def _broadcast(self, room: Room, message: dict[str, Any]) -> None:
        for member in room.members.values():
            if member.connected:
                await self._emit(member.peer_id, message)

    # ------------------------------------------------------------ media

    async def _offer(self, room: Room, member: Member, sdp: str) -> None:
        if member.peer_id in self.peers:
            raise SignalingError("the offer was already made; reconnect to start again", code="bad_state")
        peer = ServerPeer(member.peer_id, self._ice_servers, self._peer_closed)
        try:
            answer = await peer.answer(sdp)
        except SignalingError as error:
            await peer.close()
            if error.code == "unsupported_codec":  # the host sees why this person cannot join
                member.problem = error.code
                await self._changed(room, relink=False)
            raise
        self.peers[member.peer_id] = peer
        member.problem = None
        peer.audio_only_chosen = member.audio_only
        peer.audio.held = member.held_mute
        peer.on_bandwidth = self._bandwidth_changed
        peer.on_connected = self._peer_connected
        await self._emit(member.peer_id, {"type": "answer", "sdp": answer})
        await self._changed(room)

    async def _peer_connected(self, peer: ServerPeer) -> None:
        room = self._room(peer.id)
        if room is not None and self.peers.get(peer.id) is peer:
            await self._changed(room)  # what it receives is linked now

    async def _peer_closed(self, peer: ServerPeer) -> None:
        if self.peers.get(peer.id) is peer:
            await self.disconnected(peer.id)

    async def _drop_peer(self, peer_id: str) -> None:
        peer = self.peers.pop(peer_id, None)
        if peer is None:
            return
        for other in self.peers.values():
            _unlink(other, peer.id)
            _unlink(other, f"{peer.id}{SCREEN}")
        for slot in peer.slots:  # and what it was receiving from the others
            if slot.participant_id is not None:
                _unlink(peer, slot.participant_id)
        await peer.close()

    async def _changed(self, room: Room, *, relink: bool = True, about: Member | None = None) -> None:
        """Make the forwarding match the room's rules, and tell everyone what changed (what
        changed `about` a person in the lobby: only the hosts, who alone see the lobby)."""
        if room.recording:
            await self._sync_recorders(room)
        if relink:
            for subscriber_id, subscriber in room.members.items():
                sub_peer = self.peers.get(subscriber_id)
                if sub_peer is None or not sub_peer.connected:
                    continue
                for publisher_id, publisher in room.members.items():
                    pub_peer = self.peers.get(publisher_id)
                    if pub_peer is None or pub_peer is sub_peer:
                        continue
                    receives = room.receives(subscriber, publisher)
                    shown = (
                        (publisher_id, {"audio": pub_peer.audio, "video": pub_peer.video}, receives),
                        (f"{publisher_id}{SCREEN}", {"video": pub_peer.screen}, receives and publisher.screen_sharing),
                    )
                    for key, sources, wanted in shown:
                        if wanted:
                            _link(sub_peer, key, sources)
                        else:
                            _unlink(sub_peer, key)
                slot_ids = [slot.participant_id for slot in sub_peer.slots]
                if slot_ids != sub_peer.announced_slots:
                    sub_peer.announced_slots = slot_ids
                    await self._emit(subscriber_id, {"type": "slots", "slots": slot_ids})
                await sub_peer.count_streams()
        lobby = about is not None and not about.admitted
        for member in room.members.values():
            peer = self.peers.get(member.peer_id)
            if peer is not None:
                peer.audio.held = member.held_mute
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
        return {
            "rooms": len(self.rooms),
            "peers": len(self.peers),
            # Streams forwarded: one per publisher's audio or video in a subscriber's slot.
            "streams": sum(len(slot.sources) for peer in self.peers.values() for slot in peer.slots),
            "room_ids": sorted(self.rooms),
            "forwarded_packets": sum(
                s.packets for peer in self.peers.values() for slot in peer.slots for s in (slot.audio, slot.video)
            ),
        }


def _link(subscriber: ServerPeer, key: str, sources: dict[str, PublishedStream]) -> None:
    """Show a publisher's streams (key: their peer id, or it plus SCREEN) in a free slot."""
    if any(slot.participant_id == key for slot in subscriber.slots):
        return
    slot = subscriber.free_slot()
    if slot is None:
        logger.warning("peer %s has no free slot for %s", subscriber.id, key)
        return
    slot.participant_id = key
    slot.sources = sources
    for kind, stream in sources.items():
        stream.subscribe(getattr(slot, kind))


def _unlink(subscriber: ServerPeer, key: str) -> None:
    """Stop showing what a slot shows under this key."""
    for slot in subscriber.slots:
        if slot.participant_id == key:
            for kind, stream in slot.sources.items():
                stream.unsubscribe(getattr(slot, kind))
            slot.participant_id = None
            slot.sources = {}

