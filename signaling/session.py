"""One client's signaling connection: message parsing and relaying to the media hub.

No Starlette here: the WebSocket route hands text frames to `on_text` and gives `send`.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from signaling.errors import SignalingError
from signaling.hub import MediaHub, Send

logger = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 256 * 1024


class SignalingSession:
    """A participant admitted to a room, relaying their messages to the hub."""

    def __init__(self, hub: MediaHub, room_id: str, info: dict[str, Any], send: Send) -> None:
        self.hub = hub
        self.room_id = room_id
        self.info = info
        self.send = send
        # One seat per participant: a second connection (a reconnection) takes the seat over.
        self.peer_id = f"p{info['participant_id']}"
        self.left = False

    async def start(self) -> None:
        """Enter the room."""
        await self.hub.join(self.room_id, self.peer_id, self.info, self.send)

    async def on_text(self, raw: str) -> None:
        """Handle one text frame; a bad one gets an error message and changes nothing."""
        try:
            message = parse(raw)
            if message["type"] == "leave":
                await self.stop()
                return
            await self.hub.handle(self.peer_id, message)
        except SignalingError as exc:
            await self.send(exc.to_message())

    async def stop(self) -> None:
        """Leave the room for good (a goodbye)."""
        if not self.left:
            self.left = True
            await self.hub.leave(self.peer_id, self.send)

    async def dropped(self) -> None:
        """The socket closed without a goodbye: the seat is kept for a while."""
        if not self.left:
            self.left = True
            await self.hub.disconnected(self.peer_id, self.send)


def parse(raw: str) -> dict[str, Any]:
    """A client message as a dict with a 'type', or SignalingError."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise SignalingError("message too large", code="too_large")
    try:
        message = json.loads(raw)
    except (json.JSONDecodeError, ValueError):
        raise SignalingError("not valid JSON", code="bad_json") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise SignalingError("a message is a JSON object with a 'type'", code="bad_message")
    return message  # the engine knows the types, and refuses unknown ones
