"""The error a client gets as a signaling message, while the room carries on."""
from __future__ import annotations


class SignalingError(Exception):
    """A problem with one client's message; it is sent back to that client only."""

    def __init__(self, message: str, *, code: str = "bad_message", **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details

    def to_message(self) -> dict[str, object]:
        """The error as a signaling message (with any details, such as when a room opens)."""
        return {"type": "error", "code": self.code, "message": self.message, **self.details}
