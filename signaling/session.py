"""One client's signaling connection: message parsing and relaying to the media hub.

No Starlette here: the WebSocket route hands text frames to `on_text` and gives `send`.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from signaling.cluster.hub import MediaHub, Send
from signaling.errors import SignalingError

logger = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 256 * 1024
# Per connection: a steady 10 messages a second with bursts of 50 (a browser trickles its ICE
# candidates in one burst at the start); chat a message a second with bursts of 5.
MESSAGE_RATE, MESSAGE_BURST = 10.0, 50.0
CHAT_RATE, CHAT_BURST = 1.0, 5.0


class TokenBucket:
    """A rate limit: `take()` is True while the average stays under `rate` per second."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.at = burst, clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


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
        self._messages = TokenBucket(MESSAGE_RATE, MESSAGE_BURST)
        self._chat = TokenBucket(CHAT_RATE, CHAT_BURST)
        self._limited = False  # told once per flood, not once per dropped message

    async def start(self) -> None:
        """Enter the room."""
        await self.hub.join(self.room_id, self.peer_id, self.info, self.send)

    async def on_text(self, raw: str) -> None:
        """Handle one text frame; a bad one gets an error message and changes nothing, and one
        over the rate limit is dropped (the sender is told once)."""
        try:
            message = parse(raw)
            if message["type"] == "leave":
                await self.stop()
                return
            if not self._within_limits(message["type"]):
                if not self._limited:
                    self._limited = True
                    raise SignalingError("too many messages; slow down", code="rate_limited")
                return
            self._limited = False
            await self.hub.handle(self.peer_id, message)
        except SignalingError as exc:
            await self.send(exc.to_message())

    def _within_limits(self, kind: str) -> bool:
        return self._messages.take() and (kind != "chat" or self._chat.take())

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
    except (json.JSONDecodeError, ValueError, RecursionError):
        raise SignalingError("not valid JSON (or nested too deeply)", code="bad_json") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise SignalingError("a message is a JSON object with a 'type'", code="bad_message")
    return message  # the engine knows the types, and refuses unknown ones
