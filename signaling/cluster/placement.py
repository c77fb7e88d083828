"""Which node holds which room, when several Tiaojie nodes share one PostgreSQL database.

Each node writes a heartbeat row in `nodes` every few seconds: its address, its load (the
participants and rooms it holds) and whether it is draining. A room is placed on one node when
its first participant arrives (`place`), on the least loaded live node that is not draining, and
the placement is a row in `room_placements`. A participant whose WebSocket lands on another
node is sent to the room's node (`moved`, see PROTOCOL.md): media has to reach that node
directly anyway (its ICE candidates are its own), so relaying the signaling as well would add a
hop and a second shared service without sparing anyone a connection.

A placement holds while its node is alive (a heartbeat within `dead_after_s`) and, if the node
is draining, while the room is still running there. Otherwise the next participant to arrive
places the room again: the rooms of a dead node come back on another node as their people
rejoin, and a draining node's rooms move once they have emptied.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import JSON, Boolean, ForeignKey, String, delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from foundation.aio import cancel_and_wait
from foundation.database import Base, UTCDateTime, database_now, insert_first
from foundation.outage import Outage

logger = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
FENCE_CHECK_S = 0.5
LOAD_TIMEOUT_S = 0.5  # the load a heartbeat carries: the last one known when the media workers are slow to say
PROBE_TIMEOUT_S = 1.0
NEW_ROOM_STREAMS = 40  # what a room of five brings: 20 audio and 20 video streams forwarded
# A placement on this node whose room is not running here is forgotten after this long (the
# participant sent here may still be on the way).
UNUSED_PLACEMENT_S = 60
ARRIVING_S = 5.0  # a room placed this long before a heartbeat that does not report it is still on its way


class NodeRow(Base):
    """One node of the cluster, as its last heartbeat described it."""

    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(String(500))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    draining: Mapped[bool] = mapped_column(Boolean, default=False)
    participants: Mapped[int] = mapped_column(default=0)
    streams: Mapped[int] = mapped_column(default=0)
    # Every media worker of the node sheds video (signaling/media/overload.py): new rooms go elsewhere.
    overloaded: Mapped[bool] = mapped_column(Boolean, default=False)
    # The rooms (session ids, as text) running on the node.
    rooms: Mapped[list[str]] = mapped_column(JSON, default=list)


class RoomPlacement(Base):
    """The node a session's room lives on."""

    __tablename__ = "room_placements"

    session_id: Mapped[int] = mapped_column(ForeignKey("mediation_sessions.id", ondelete="CASCADE"), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(64))
    placed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


@dataclasses.dataclass(frozen=True)
class Load:
    """What a node reports about itself."""

    participants: int
    streams: int
    rooms: Sequence[str]
    overloaded: bool = False  # every media worker sheds video


class NoNode(RuntimeError):
    """No live node takes new rooms (all draining or dead)."""


def alive(node: NodeRow, now: dt.datetime, dead_after_s: float) -> bool:
    """Whether the node's last heartbeat is recent enough."""
    return node.heartbeat_at > now - dt.timedelta(seconds=dead_after_s)


def holds(node: NodeRow, placement: RoomPlacement, now: dt.datetime, dead_after_s: float) -> bool:
    """Whether a placement still stands: its node is alive, and takes rooms or runs this one
    (or has not reported since the room was placed there)."""
    running = str(placement.session_id) in node.rooms or placement.placed_at >= node.heartbeat_at
    return alive(node, now, dead_after_s) and (not node.draining or running)


def choose(nodes: Sequence[NodeRow], arriving: dict[str, int], now: dt.datetime, dead_after_s: float) -> NodeRow:
    """The live, not draining node with the least load: one that is not overloaded, then the
    streams it forwards, and for each room placed on it that has not started yet (`arriving`), as
    many as a room of five brings; then the fewest participants, then rooms."""
    candidates = [n for n in nodes if alive(n, now, dead_after_s) and not n.draining]
    if not candidates:
        raise NoNode("no node takes new rooms")
    return min(candidates, key=lambda n: (n.overloaded, n.streams + NEW_ROOM_STREAMS * arriving.get(n.id, 0), n.participants,
                                          len(n.rooms), n.id))


def arriving_rooms(nodes: Sequence[NodeRow], placements: Sequence[RoomPlacement]) -> dict[str, int]:
    """Per node, the rooms placed on it that its heartbeat does not report running yet (their
    people are on their way). A room that has ended counts no more: its placement is older than
    the node's last heartbeat by more than ARRIVING_S (a heartbeat taken a moment after the
    placement, before the first person's join reached the media, does not report it yet)."""
    by_id = {n.id: n for n in nodes}
    counts: dict[str, int] = {}
    for placement in placements:
        node = by_id.get(placement.node_id)
        if node is not None and str(placement.session_id) not in node.rooms and placement.placed_at >= node.heartbeat_at - dt.timedelta(seconds=ARRIVING_S):
            counts[node.id] = counts.get(node.id, 0) + 1
    return counts


async def heartbeat(db: AsyncSession, node_id: str, url: str, load: Load, now: dt.datetime, *, starting: bool = False) -> NodeRow:
    """Write this node's row (a node that starts takes rooms again: it is not draining). Only
    this row: nothing another transaction may hold keeps a heartbeat waiting."""
    node = await db.get(NodeRow, node_id, with_for_update=True)
    if node is None:
        node = NodeRow(id=node_id, started_at=now, draining=False)
        db.add(node)
    if starting:
        node.started_at, node.draining = now, False
    node.url, node.heartbeat_at = url, now
    node.participants, node.streams, node.rooms = load.participants, load.streams, list(load.rooms)
    node.overloaded = load.overloaded
    return node


async def forget_unused(db: AsyncSession, node_id: str, rooms: Sequence[str], now: dt.datetime) -> None:
    """Forget this node's placements of rooms that never came. Tidying, apart from the heartbeat
    and never waiting long: a placement row another node holds (one cut off in the middle of
    placing a room keeps its lock until PostgreSQL notices) is left for the next time."""
    if db.bind is not None and db.bind.dialect.name == "postgresql":
        await db.execute(text("SET LOCAL lock_timeout = '500ms'"))
    await db.execute(delete(RoomPlacement).where(
        RoomPlacement.node_id == node_id, RoomPlacement.session_id.not_in([int(r) for r in rooms if r.isdigit()]),
        RoomPlacement.placed_at < now - dt.timedelta(seconds=UNUSED_PLACEMENT_S),
    ))


async def place(db: AsyncSession, session_id: int, now: dt.datetime, dead_after_s: float) -> NodeRow:
    """The node of a session's room: where it is, or (placing it) the least loaded one.
    Two nodes placing one room at once agree: the placement row is locked or unique."""
    for _ in range(3):
        placement = await db.get(RoomPlacement, session_id, with_for_update=True, populate_existing=True)
        nodes = list(await db.scalars(select(NodeRow)))
        by_id = {n.id: n for n in nodes}
        if placement is not None and placement.node_id in by_id and holds(by_id[placement.node_id], placement, now, dead_after_s):
            return by_id[placement.node_id]
        node = choose(nodes, arriving_rooms(nodes, list(await db.scalars(select(RoomPlacement)))), now, dead_after_s)
        if placement is not None:
            placement.node_id, placement.placed_at = node.id, now
            return node
        if await insert_first(db, RoomPlacement(session_id=session_id, node_id=node.id, placed_at=now)):
            return node
        # another node placed it just now: read theirs
    raise NoNode("could not place the room")


async def set_draining(db: AsyncSession, node_id: str, draining: bool) -> NodeRow | None:
    """Stop (or start again) placing new rooms on a node; None if there is no such node."""
    node = await db.get(NodeRow, node_id, with_for_update=True)
    if node is not None:
        node.draining = draining
    return node


def describe(node: NodeRow, now: dt.datetime, dead_after_s: float) -> dict[str, Any]:
    """A node as the CLI and the API show it."""
    return {
        "id": node.id, "url": node.url, "alive": alive(node, now, dead_after_s), "draining": node.draining,
        "overloaded": node.overloaded, "rooms": len(node.rooms), "participants": node.participants, "streams": node.streams,
        "heartbeat_at": node.heartbeat_at.isoformat(),
    }


Rooms = Callable[[list[str] | None], Awaitable[None]]


async def _nothing(rooms: list[str] | None) -> None:
    return None


class Membership:
    """This node's part in the cluster: its heartbeat, and the node of each room.

    A node hosts a room only while the cluster agrees (the fencing rule): once its heartbeat has
    not been written for half the dead time, by its own monotonic clock from when it last sent
    one, it stops hosting and sends every page to rejoin (`evict(None)`); the others take its
    rooms only after the whole dead time, by the database's clock from when that heartbeat was
    written, which is later. A room whose placement has moved to another node while it still
    runs here (this node was taken for dead) is sent away too (`evict([room])`).
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], node_id: str, url: str, dead_after_s: float,
        load: Callable[[], Awaitable[Load]], outage: Outage | None = None, evict: Rooms = _nothing,
        beat_sessions: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self.sessions, self.node_id, self.url = sessions, node_id, url.rstrip("/")
        # The heartbeat's own connections (an engine of its own): never queued behind requests.
        self._beat_sessions = beat_sessions or sessions
        self._last_load = Load(0, 0, ())
        self._outage = outage or Outage()
        self.dead_after_s = dead_after_s
        self._load = load
        self._evict = evict
        self._tasks: list[asyncio.Task[None]] = []
        self.hosting = False
        self.fences = 0  # times this node stopped hosting for want of its heartbeat (/metrics)
        self._beat_sent = 0.0  # monotonic time at which the last heartbeat written was sent

    async def start(self) -> None:
        """Join the cluster (taking rooms, even after a drain) and keep the heartbeat going."""
        await self.beat(starting=True)
        self._tasks = [asyncio.create_task(self._beat_forever(), name="cluster-heartbeat"),
                       asyncio.create_task(self._fence_forever(), name="cluster-fence")]

    async def stop(self) -> None:
        """Leave the cluster: the rooms placed here are placed again as their people rejoin."""
        for task in self._tasks:
            await cancel_and_wait(task)
        async with self.sessions() as db, db.begin():
            node = await db.get(NodeRow, self.node_id)
            if node is not None:
                await db.delete(node)

    async def _load_now(self) -> Load:
        """The media workers' load, or the last one known if they are slow to answer (a busy
        machine): a heartbeat is about being alive first."""
        try:
            async with asyncio.timeout(LOAD_TIMEOUT_S):
                self._last_load = await self._load()
        except TimeoutError:
            logger.info("node %s: the media workers were slow to give their load; the heartbeat carries the last one",
                        self.node_id)
        return self._last_load

    async def beat(self, *, starting: bool = False) -> None:
        """Write this node's heartbeat; send away the rooms running here that are placed elsewhere.
        A slow write is waited for as long as the fence allows (a busy node is alive), not cut
        off early and counted as missed."""
        sent = time.monotonic()
        load = await self._load_now()
        allowed = max(1.0, self._beat_sent + self.dead_after_s / 2 - sent) if self._beat_sent else self.dead_after_s / 2
        async with asyncio.timeout(allowed), self._beat_sessions() as db, db.begin():
            # The heartbeat's time is when the load was taken (see `holds`), on the database's clock.
            measured = await database_now(db) - dt.timedelta(seconds=time.monotonic() - sent)
            await heartbeat(db, self.node_id, self.url, load, measured, starting=starting)
            lost = await moved_away(db, self.node_id, load.rooms)
        self._beat_sent = sent
        try:
            async with self._beat_sessions() as db, db.begin():
                await forget_unused(db, self.node_id, load.rooms, measured)
        except Exception as exc:  # a lock held elsewhere, or the database gone: tidy next time
            logger.debug("node %s: placements not tidied this time (%s)", self.node_id, exc)
        if not self.hosting:
            if not starting:
                logger.warning("node %s writes its heartbeat again and hosts rooms again", self.node_id)
            self.hosting = True
        if lost:
            logger.warning("rooms %s are placed on another node now: their people rejoin there", ", ".join(lost))
            await self._evict(lost)

    async def _beat_forever(self) -> None:
        # Often enough that a node missing three or four beats stays inside its fence.
        every_s = min(HEARTBEAT_S, self.dead_after_s / 10)
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.beat()
                self._outage.answered()
            except Exception as exc:
                if not self._outage.failed(exc, "writing the cluster heartbeat"):
                    logger.exception("cluster heartbeat failed")

    async def _fence_forever(self) -> None:
        while True:
            await asyncio.sleep(FENCE_CHECK_S)
            if self.hosting and time.monotonic() - self._beat_sent > self.dead_after_s / 2:
                self.hosting = False
                self.fences += 1
                logger.error("node %s has not written its heartbeat for %.0f s: it stops hosting rooms, and their "
                             "people rejoin through the site", self.node_id, self.dead_after_s / 2)
                await self._evict(None)

    async def room_node(self, session_id: int) -> NodeRow:
        """The node that holds (or now gets) a session's room. A node whose port refuses
        connections is taken for dead at once (no process listens there, so no room runs there),
        rather than after the dead time (so is one a proxy in front cannot reach); NoNode while
        this node itself is fenced."""
        for _ in range(3):
            async with self.sessions() as db, db.begin():
                node = await place(db, session_id, await database_now(db), self.dead_after_s)
            if node.id == self.node_id:
                if not self.hosting:
                    raise NoNode("this node is cut off from the cluster")
                return node
            if await _answers(node.url) is not False:
                return node
            logger.warning("node %s does not answer at %s: taken for dead", node.id, node.url)
            async with self.sessions() as db, db.begin():
                await forget_node(db, node.id, listening_since=node.heartbeat_at)
        raise NoNode("no live node for the room")


async def moved_away(db: AsyncSession, node_id: str, rooms: Sequence[str]) -> list[str]:
    """Of the rooms running on a node, those now placed on another node."""
    ids = [int(r) for r in rooms if r.isdigit()]
    if not ids:
        return []
    placed = await db.scalars(select(RoomPlacement.session_id).where(
        RoomPlacement.session_id.in_(ids), RoomPlacement.node_id != node_id))
    return sorted(str(session_id) for session_id in placed)


async def forget_node(db: AsyncSession, node_id: str, *, listening_since: dt.datetime | None = None) -> bool:
    """Remove a node from the cluster (dead: its rooms are placed again as their people come);
    with `listening_since`, only if it has not written a heartbeat since. Whether it was removed."""
    query = delete(NodeRow).where(NodeRow.id == node_id)
    if listening_since is not None:
        query = query.where(NodeRow.heartbeat_at <= listening_since)
    return bool((await db.execute(query)).rowcount)  # type: ignore[attr-defined]


async def _answers(url: str) -> bool | None:
    """Whether a node answers at its address (its /healthz): False if the connection is refused
    or a proxy in front says it cannot reach it (502, 504); None if that cannot be told within a
    second (the network, not the process); True for any other answer."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    tls = None
    if secure:  # only the status is read, nothing is sent that needs the certificate checked
        tls = ssl.create_default_context()
        tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(parts.hostname, port, ssl=tls)
            writer.write(f"GET {parts.path.rstrip('/')}/healthz HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                         "Connection: close\r\n\r\n".encode())
            status = (await reader.readline()).split()
            writer.close()
    except ConnectionRefusedError:
        return False
    except (OSError, TimeoutError):
        return None
    return not (len(status) > 1 and status[1] in (b"502", b"504"))
