"""The signaling WebSocket: /ws/rooms/{session_id}, opened with a personal invite token."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from foundation.database import iso_utc, read_only, utcnow
from foundation.errors import AppError
from scheduling import invites, room_record
from server.http import is_number
from signaling.cluster.ice import ice_servers
from signaling.cluster.placement import NoNode
from signaling.errors import SignalingError
from signaling.session import SignalingSession, parse

logger = logging.getLogger(__name__)
JOIN_TIMEOUT_S = 10
SWEEP_S = 2.0  # how often the links of everyone in a room on this node are checked again
End = Callable[[str], Awaitable[None]]


class RoomSockets:
    """The room sockets open on this node, by participant, each with the link version it came in
    with. A link that ends (revoked, reissued, the person removed from the panel, their expert
    account disabled, the session cancelled) ends its holder's place in the room: `end` at once
    where this node made the change, and the sweep every SWEEP_S for a change made elsewhere (another
    node, the command line), with one query for everyone in every room here."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], outage: Any) -> None:
        self._sessions, self._outage = sessions, outage
        self._open: dict[int, tuple[int, End]] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, participant_id: int, version: int, end: End) -> None:
        self._open[participant_id] = (version, end)

    def discard(self, participant_id: int, end: End) -> None:
        if self._open.get(participant_id, (0, None))[1] is end:
            del self._open[participant_id]

    async def end(self, reasons: dict[int, str]) -> None:
        """Close these participants' sockets and media here, saying why."""
        for participant_id, reason in reasons.items():
            entry = self._open.pop(participant_id, None)
            if entry is not None:
                await entry[1](reason)

    async def check(self) -> None:
        """End the places whose links no longer hold."""
        if not self._open:
            return
        admitted = {participant_id: version for participant_id, (version, _) in self._open.items()}
        async with self._sessions() as db:
            await read_only(db)
            ended = await invites.ended_links(db, admitted)
        await self.end(ended)

    def start(self) -> None:
        self._task = asyncio.create_task(self._sweep())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            try:
                await self.check()
            except Exception as exc:  # the database out of reach: the next sweep tries again
                if not self._outage.failed(exc, "checking the links of the people in rooms"):
                    logger.exception("could not check the links of the people in rooms")


async def room_socket(websocket: WebSocket) -> None:
    """Authenticate with the first message ({"type": "join", "token": ...}), then relay."""
    await websocket.accept()

    async def send(message: dict[str, Any]) -> None:
        await websocket.send_text(json.dumps(message, ensure_ascii=False))

    try:
        try:
            info = await _admit(websocket, send)
        except (TimeoutError, SignalingError, WebSocketDisconnect):
            raise
        except Exception as exc:  # the database out of reach: this node cannot check the link now
            if not websocket.app.state.outage.failed(exc, "checking a join"):
                raise
            raise SignalingError("no media server is available; try again soon", code="no_node") from None
    except (TimeoutError, SignalingError, WebSocketDisconnect) as exc:
        websocket.app.state.metrics.joined("refused", exc.code if isinstance(exc, SignalingError) else
                                           "join_timeout" if isinstance(exc, TimeoutError) else "gone")
        try:
            if isinstance(exc, SignalingError):
                await send(exc.to_message())
                await websocket.close(code=1013 if exc.code == "no_node" else 4403)
            elif isinstance(exc, asyncio.TimeoutError):
                await send({"type": "error", "code": "join_timeout", "message": "send join first"})
                await websocket.close(code=4408)
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client is gone already
        return
    settings = websocket.app.state.settings
    cluster = websocket.app.state.cluster
    if cluster is not None:
        try:
            node = await cluster.room_node(int(websocket.path_params["session_id"]))
        except Exception as exc:  # no node takes the room now, or the database is out of reach
            if not isinstance(exc, NoNode) and not websocket.app.state.outage.failed(exc, "placing a room"):
                raise
            websocket.app.state.metrics.joined("refused", "no_node")
            await send({"type": "error", "code": "no_node", "message": "no media server is available; try again soon"})
            await websocket.close(code=1013)
            return
        if node.id != cluster.node_id:
            websocket.app.state.metrics.joined("moved")
            await send({"type": "moved", "url": f"{ws_url(node.url)}/ws/rooms/{websocket.path_params['session_id']}"})
            await websocket.close(code=4307)
            return
    await send({"type": "config", "ice_servers": ice_servers(
        settings.stun_urls, settings.turn_urls, settings.turn_secret, f"p{info['participant_id']}",
        time.time(), settings.turn_ttl_s,
    )})
    websocket.app.state.metrics.joined("rejoined" if info["readmitted"] else "joined")
    version = info.pop("link_version")
    session = SignalingSession(websocket.app.state.media, websocket.path_params["session_id"], info, send)

    async def end(reason: str) -> None:
        """This link ended: nothing of the room reaches its holder any more, media included."""
        with contextlib.suppress(Exception):
            await send({"type": "removed", "revoked": True, "reason": reason})
        await session.stop()
        with contextlib.suppress(Exception):
            await websocket.close(code=4403)

    sockets: RoomSockets = websocket.app.state.room_sockets
    sockets.add(info["participant_id"], version, end)
    await session.start()
    try:
        while not session.left:
            try:
                await session.on_text(await _receive_text(websocket))
            except SignalingError as exc:  # a binary frame: say so, and carry on
                await send(exc.to_message())
    except (WebSocketDisconnect, RuntimeError):  # Starlette raises RuntimeError subclasses after a close
        pass
    finally:
        sockets.discard(info["participant_id"], end)
        await session.dropped()


async def _receive_text(websocket: WebSocket) -> str:
    """The next text frame; SignalingError for a binary one (the protocol is JSON text)."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    if message.get("text") is None:
        raise SignalingError("send JSON in text frames, not binary ones", code="bad_message")
    return str(message["text"])


async def _admit(websocket: WebSocket, send: Any) -> dict[str, Any]:
    async with asyncio.timeout(JOIN_TIMEOUT_S):
        message = parse(await _receive_text(websocket))
    if message.get("type") != "join" or not isinstance(message.get("token"), str):
        raise SignalingError("the first message must be {\"type\": \"join\", \"token\": ...}", code="join_first")
    raw_id = websocket.path_params["session_id"]
    if not is_number(raw_id):
        raise SignalingError("no such session", code="not_found")
    state = websocket.app.state
    settings = state.settings
    now = utcnow()
    try:
        async with state.db_sessions() as db, db.begin():
            session, participant = await invites.open_invite(db, state.tokens, message["token"], session_id=int(raw_id), now=now)
            if session.status == "ended":
                raise SignalingError("this session has ended", code="ended")
            if not invites.room_is_open(session, now, settings.room_open_before_s, settings.room_close_after_s):
                if participant.kind != "host" or now > session.end:
                    opens = invites.room_opens_at(session, settings.room_open_before_s)
                    raise SignalingError("the room is not open now", code="room_closed",
                                         opens_at=iso_utc(opens) if now < opens else None)
                session.room_opened_at = now  # the host opens the room early
            readmitted = await room_record.still_admitted(db, session.id, participant.id)
    except AppError as exc:
        raise SignalingError(exc.message, code=f"invite_{exc.status_code}") from None
    return {
        "participant_id": participant.id, "name": participant.display_name, "role": participant.role,
        "kind": participant.kind, "readmitted": readmitted, "link_version": participant.link_version,
    }


def ws_url(http_url: str) -> str:
    """The WebSocket address of a node's http(s) address."""
    return "wss://" + http_url.removeprefix("https://") if http_url.startswith("https://") \
        else "ws://" + http_url.removeprefix("http://")


routes = [WebSocketRoute("/ws/rooms/{session_id}", room_socket)]

