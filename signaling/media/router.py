"""The media router of one process: who receives whose streams.

One `ServerPeer` per participant (what mediasoup calls a transport with its producers and
consumers). The router links a publisher's voice, camera and screen into a subscriber's receive
slots as it is told (`route`), chooses layers and videos for each subscriber's downlink, and once a
second steers each publisher's bitrate from what its watchers can take. It knows nothing of rooms,
lobbies or hosts: the room application (`signaling/room/rooms.py`) decides who hears whom and calls it.

It speaks to participants only about media: `slots` (whom each receive slot shows), `bandwidth`
(videos paused or not shown for the link) and `link` (their own link weak or well).
"""
from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from aiortc import RTCIceServer

from signaling.errors import SignalingError
from signaling.media.bandwidth import AUDIO_BPS, SMALL_LAYER_BPS, publisher_target_bps
from signaling.media.forwarding import PublishedStream
from signaling.media.lateness import LoopLag, udp_drops
from signaling.media.overload import Shedding
from signaling.media.peers import SCREEN, SLOTS, ServerPeer
from signaling.media.recording import PublisherRecording
from signaling.media.transport_cc import FEEDBACK_INTERVAL_S

# What the room application uses of the media engine: the router, its receive slots, a recording.
__all__ = ["SLOTS", "MediaRouter", "PublisherRecording"]

logger = logging.getLogger(__name__)
Emit = Callable[[str, dict[str, Any]], Awaitable[None]]
PeerEvent = Callable[[str], Awaitable[None]]
LinkEvent = Callable[[str, bool], Awaitable[None]]
OverloadEvent = Callable[[bool], Awaitable[None]]
CONTROL_INTERVAL_S = 1.0  # layers, videos shown, reports and publishers' targets, once a second


async def _nothing(*args: Any) -> None:
    return None


class MediaRouter:
    """Every participant's peer connection in this process, and what each forwards to whom."""

    def __init__(
        self, emit: Emit, ice_servers: list[RTCIceServer] | None = None, *,
        on_connected: PeerEvent = _nothing, on_closed: PeerEvent = _nothing, on_link: LinkEvent = _nothing,
        on_overload: OverloadEvent = _nothing,
    ) -> None:
        """`on_connected(peer_id)`: its transport is up (link it now); `on_closed(peer_id)`: its
        connection failed or closed; `on_link(peer_id, weak)`: its links became weak or well;
        `on_overload(overloaded)`: this process began or ceased to shed video (overload.py)."""
        self._emit = emit
        self._ice_servers = ice_servers or []
        self._on_connected = on_connected
        self._on_closed = on_closed
        self._on_link = on_link
        self._on_overload = on_overload
        self.peers: dict[str, ServerPeer] = {}
        self._control: asyncio.Task[None] | None = None
        self._feedback: asyncio.Task[None] | None = None
        self.lag = LoopLag()  # how late this process runs (signaling/media/lateness.py)
        self.shedding = Shedding()
        self._behind_at = (time.monotonic(), 0.0)  # (when, the loop's lag so far) at the last control tick

    # ------------------------------------------------------------ peers

    async def connect(self, peer_id: str, offer_sdp: str, *, audio_only: bool = False, held: bool = False) -> str:
        """A participant's offer: its peer connection, and the answer (SignalingError for a bad offer)."""
        if peer_id in self.peers:
            raise SignalingError("the offer was already made; reconnect to start again", code="bad_state")
        if self._control is None:
            self._control = asyncio.create_task(self._run_control(), name="media-control")
            self.lag.start()
            self._feedback = asyncio.create_task(self._run_feedback(), name="media-feedback")
        peer = ServerPeer(peer_id, self._ice_servers, self._peer_closed)
        try:
            answer = await peer.answer(offer_sdp)
        except SignalingError:
            await peer.close()
            raise
        self.peers[peer_id] = peer
        peer.audio_only_chosen = audio_only
        peer.audio.held = held
        peer.on_bandwidth = self._bandwidth_changed
        peer.on_connected = self._peer_connected
        return answer

    async def add_candidate(self, peer_id: str, sdp: str, sdp_mid: str | None, sdp_mline_index: int | None) -> None:
        """A trickled ICE candidate for a participant's connection."""
        peer = self.peers.get(peer_id)
        if peer is None:
            raise SignalingError("send the offer before candidates", code="bad_state")
        await peer.add_candidate(sdp, sdp_mid, sdp_mline_index)

    def has(self, peer_id: str) -> bool:
        """Whether the participant has a peer connection here."""
        return peer_id in self.peers

    async def drop(self, peer_id: str) -> None:
        """Close a participant's connection: nobody receives it, it receives nobody."""
        peer = self.peers.pop(peer_id, None)
        if peer is None:
            return
        for other in self.peers.values():
            _unlink(other, peer.id)
            _unlink(other, f"{peer.id}{SCREEN}")
        for slot in peer.slots:
            if slot.participant_id is not None:
                _unlink(peer, slot.participant_id)
        await peer.close()

    async def close(self) -> None:
        """Close every connection (at shutdown)."""
        for task in (self._control, self._feedback):
            if task is not None:
                task.cancel()
        await self.lag.stop()
        for peer_id in list(self.peers):
            await self.drop(peer_id)

    async def _peer_connected(self, peer: ServerPeer) -> None:
        if self.peers.get(peer.id) is peer:
            await self._on_connected(peer.id)

    async def _peer_closed(self, peer: ServerPeer) -> None:
        if self.peers.get(peer.id) is peer:
            await self._on_closed(peer.id)

    # ------------------------------------------------------------ who receives whom

    async def route(self, subscriber_id: str, publishers: Mapping[str, bool]) -> None:
        """Make a subscriber receive exactly these publishers (voice and camera; and the screen
        where the value is true), in this order of preference for free slots; nothing until its
        transport is up. Tells it when the slots change."""
        subscriber = self.peers.get(subscriber_id)
        if subscriber is None or not subscriber.connected:
            return
        wanted: dict[str, dict[str, PublishedStream]] = {}
        for publisher_id, with_screen in publishers.items():
            publisher = self.peers.get(publisher_id)
            if publisher is None or publisher is subscriber:
                continue
            wanted[publisher_id] = {"audio": publisher.audio, "video": publisher.video}
            if with_screen:
                wanted[f"{publisher_id}{SCREEN}"] = {"video": publisher.screen}
        for slot in subscriber.slots:
            if slot.participant_id is not None and slot.participant_id not in wanted:
                _unlink(subscriber, slot.participant_id)
        for key, sources in wanted.items():
            _link(subscriber, key, sources)
        slot_ids = [slot.participant_id for slot in subscriber.slots]
        if slot_ids != subscriber.announced_slots:
            subscriber.announced_slots = slot_ids
            await self._emit(subscriber_id, {"type": "slots", "slots": slot_ids})
        await subscriber.count_streams()

    def hold(self, peer_id: str, held: bool) -> None:
        """Hold a participant's voice back from everyone (the host muted them), or let it through."""
        if (peer := self.peers.get(peer_id)) is not None:
            peer.audio.held = held

    async def audio_only(self, peer_id: str, on: bool) -> None:
        """The participant chose voices only (or video again)."""
        if (peer := self.peers.get(peer_id)) is not None:
            peer.audio_only_chosen = on
            await peer.show_videos()

    def show_sizes(self, peer_id: str, pixels: list[int | None]) -> None:
        """How large the participant's page shows each slot (for the layer it gets)."""
        if (peer := self.peers.get(peer_id)) is not None:
            peer.show_sizes(pixels)

    def screen_started(self, peer_id: str) -> None:
        """A participant began sharing its screen: ask for a keyframe to show it at once."""
        if (peer := self.peers.get(peer_id)) is not None:
            peer.screen.want_keyframe()

    def loudest(self, peer_ids: Iterable[str], below: int) -> str | None:
        """Of these participants, who spoke loudest since the last call, if louder than `below`
        (an RFC 6464 level, -dBov: lower is louder); starts the next measurement."""
        loudest, speaker = below, None
        for peer_id in peer_ids:
            peer = self.peers.get(peer_id)
            if peer is None:
                continue
            if peer.audio.loudest < loudest:
                loudest, speaker = peer.audio.loudest, peer_id
            peer.audio.loudest = 127
        return speaker

    def heard(self, listeners: Iterable[str], speaker: str) -> None:
        """These participants heard `speaker` speak last (on a link that carries only some
        videos, the latest speakers' come first)."""
        for peer_id in listeners:
            if (peer := self.peers.get(peer_id)) is not None:
                peer.heard(speaker)

    def recording(self, peer_id: str, path: Path) -> PublisherRecording:
        """A recording of a participant's voice and camera into this file (not yet started)."""
        peer = self.peers[peer_id]
        return PublisherRecording(path, peer.audio, peer.video)

    # ------------------------------------------------------------ once a second (and transport feedback ten times)

    async def _run_control(self) -> None:
        while True:
            await asyncio.sleep(CONTROL_INTERVAL_S)
            await self.control()

    async def _run_feedback(self) -> None:
        while True:
            await asyncio.sleep(FEEDBACK_INTERVAL_S)
            for peer in self.peers.values():
                peer.send_transport_feedback()

    async def control(self) -> None:
        """Estimate each downlink, choose its videos and layers (shedding, when this process
        cannot keep up), send reports, judge links, and steer the publishers."""
        for peer in list(self.peers.values()):
            await peer.bandwidth_tick()
        server_late = self.lag.late_lately
        drops = udp_drops() if self.peers else {}
        watchers = self._watchers()
        # (a process with nobody to forward to is not overloaded, however late a busy machine
        # runs its loop: before, an idle node beside a CPU hog said it was, and took no rooms)
        behind = self._behind_share()
        overload = self.shedding.second(behind if self.peers else 0.0, sorted(
            (p.id for p in self.peers.values() if p.simulcast and p.video.active_layers()),
            key=lambda key: (len(watchers.get(key, [])), key)))
        capped = frozenset(self.shedding.shed)
        for peer in list(self.peers.values()):
            await peer.show_videos()  # a new speaker's video on a link that carries only some
            peer.capped = capped
            peer.choose_layers()
            peer.send_reports()
            if peer.judge_links(server_late, drops):
                await self._link_changed(peer)
        self._steer_publishers(watchers)
        if overload is not None:
            logger.warning("media process %s: %s", "overloaded, shedding video" if overload else "keeping up again",
                           {"shed": self.shedding.shed, "peers": len(self.peers)})
            await self._on_overload(overload)

    def _behind_share(self) -> float:
        """The share of the time since the last call that the event loop spent behind."""
        now, behind = time.monotonic(), self.lag.behind_ms
        then, before = self._behind_at
        self._behind_at = (now, behind)
        return (behind - before) / max(1.0, (now - then) * 1000)

    def _watchers(self) -> dict[str, list[ServerPeer]]:
        """Who gets each publisher's video (by its key), now."""
        watchers: dict[str, list[ServerPeer]] = collections.defaultdict(list)
        for subscriber in self.peers.values():
            for slot in subscriber.slots:
                if slot.participant_id is not None and not slot.video.paused:
                    watchers[slot.participant_id].append(subscriber)
        return watchers

    def _steer_publishers(self, watchers: dict[str, list[ServerPeer]]) -> None:
        """Ask each publisher's browser to send what its weakest watcher can take (REMB), so that
        a participant on a slow link still gets every camera; a camera in simulcast layers sends
        them all (the weak get the small one), and its small one alone while it is shed."""
        for publisher in self.peers.values():
            if publisher.video.ssrc is None:
                continue
            target = SMALL_LAYER_BPS if publisher.id in self.shedding.shed else publisher_target_bps(
                [p.downlink.video_share_bps() for p in watchers.get(publisher.id, [])], simulcast=publisher.simulcast)
            sharing = publisher.screen.ssrc is not None and bool(watchers.get(f"{publisher.id}{SCREEN}"))
            publisher.send_remb(target * (2 if sharing else 1) + AUDIO_BPS)

    async def _bandwidth_changed(self, peer: ServerPeer) -> None:
        await self._emit(peer.id, {"type": "bandwidth", "audio_only": peer.downlink.audio_only,
                                   "paused": peer.paused_video, "not_shown": peer.not_shown,
                                   "estimate_bps": peer.downlink.estimate_bps})

    async def _link_changed(self, peer: ServerPeer) -> None:
        down, up = peer.downlink_quality.weak, peer.uplink_quality.weak
        await self._emit(peer.id, {"type": "link", "downlink": "weak" if down else "good",
                                   "uplink": "weak" if up else "good"})
        await self._on_link(peer.id, down or up)

    def stats(self) -> dict[str, Any]:
        """Counts for monitoring and tests."""
        return {
            "peers": len(self.peers),
            # Streams forwarded: one per publisher's audio or video in a subscriber's slot.
            "streams": sum(len(slot.sources) for peer in self.peers.values() for slot in peer.slots),
            "forwarded_packets": sum(
                s.packets for peer in self.peers.values() for slot in peer.slots for s in (slot.audio, slot.video)
            ),
            # Each subscriber's downlink: the share lost in its latest report, and its estimate
            # (links with one; a link never limited has none).
            "link_loss": [peer.downlink.last_loss for peer in self.peers.values()],
            "link_estimate_bps": [e for peer in self.peers.values() if (e := peer.downlink.estimate_bps) is not None],
            # How late this process's event loop ran: the worst since the last read (ms), and
            # the ticks later than LATE_MS so far.
            "loop_lag_ms": self.lag.take_worst(),
            "loop_late_total": self.lag.late_total,
            # Shedding (overload.py): cameras held to their small layer now, and whether it is
            # overloaded (0 or 1: summed over workers, how many are).
            "shed_videos": len(self.shedding.shed),
            "overloaded": int(self.shedding.overloaded),
            "overload_episodes": self.shedding.episodes,
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
