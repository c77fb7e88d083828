"""The media hub the WebSocket layer talks to: the engine in this process, or in workers.

Both kinds take the same three calls (join, handle, leave) and deliver the engine's messages
to each participant's `send` callback.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from aiortc import RTCIceServer

from signaling.errors import SignalingError
from signaling.room.rooms import Record, Rooms, no_record

logger = logging.getLogger(__name__)
Send = Callable[[dict[str, Any]], Awaitable[None]]


class MediaHub(Protocol):
    """Where rooms live."""

    async def join(self, room_id: str, peer_id: str, info: dict[str, Any], send: Send) -> None: ...

    async def handle(self, peer_id: str, message: dict[str, Any]) -> None: ...

    async def leave(self, peer_id: str, send: Send | None = None) -> None: ...

    async def disconnected(self, peer_id: str, send: Send) -> None: ...

    async def stats(self) -> dict[str, Any]: ...

    def workers_down(self) -> int:
        """Media worker processes that are not running now (dead, not yet replaced)."""
        ...

    async def evict(self, room_ids: list[str] | None) -> None: ...

    async def close(self) -> None: ...


REJOIN = {"type": "error", "code": "rejoin", "message": "this room moves to another server; reconnecting"}


class InProcessHub:
    """Rooms in the web process (tests and small offices)."""

    def __init__(
        self, ice_servers: list[RTCIceServer] | None = None, record: Record = no_record,
        reconnect_timeout_s: float = 30.0, recordings_dir: Path | None = None,
    ) -> None:
        self._senders: dict[str, Send] = {}
        self.engine = Rooms(
            self._emit, ice_servers, record=record, reconnect_timeout_s=reconnect_timeout_s,
            recordings_dir=recordings_dir,
        )

    async def _emit(self, peer_id: str, message: dict[str, Any]) -> None:
        send = self._senders.get(peer_id)
        if send is not None:
            try:
                await send(message)
            except Exception:  # a closed socket: its reader cleans up
                logger.debug("could not deliver %s to %s", message.get("type"), peer_id)

    async def join(self, room_id: str, peer_id: str, info: dict[str, Any], send: Send) -> None:
        self._senders[peer_id] = send
        await self.engine.join(room_id, peer_id, info)

    async def handle(self, peer_id: str, message: dict[str, Any]) -> None:
        try:
            await self.engine.handle(peer_id, message)
        except SignalingError as exc:
            await self._emit(peer_id, exc.to_message())
        except Exception:  # a bug must cost one message, not the connection or the room
            logger.exception("media engine failed on %s from %s", message.get("type"), peer_id)
            await self._emit(peer_id, {"type": "error", "code": "internal", "message": "media error"})

    async def leave(self, peer_id: str, send: Send | None = None) -> None:
        if send is not None and self._senders.get(peer_id) is not send:
            return  # an older connection of someone who has reconnected since
        await self.engine.leave(peer_id)
        self._senders.pop(peer_id, None)

    async def disconnected(self, peer_id: str, send: Send) -> None:
        if self._senders.get(peer_id) is send:
            del self._senders[peer_id]
            await self.engine.disconnected(peer_id)

    async def stats(self) -> dict[str, Any]:
        return {"workers": 0, **self.engine.stats()}

    def workers_down(self) -> int:
        return 0  # no worker processes: the rooms live in this one

    async def evict(self, room_ids: list[str] | None) -> None:
        """Send everyone in these rooms (None: all) to rejoin through the site, and close the rooms here."""
        rooms = self.engine.rooms
        for room_id in list(rooms) if room_ids is None else room_ids:
            room = rooms.get(room_id)
            for peer_id in list(room.members) if room is not None else []:
                await self._emit(peer_id, REJOIN)
                self._senders.pop(peer_id, None)
                await self.engine.leave(peer_id, reason="moved")

    async def close(self) -> None:
        await self.engine.close()
