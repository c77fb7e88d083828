"""The error a client gets as a signaling message, while the room carries on."""
from __future__ import annotations


class SignalingError(Exception):
    """A problem with one client's message; it is sent back to that client only."""

    def __init__(self, message: str, *, code: str = "bad_message") -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def to_message(self) -> dict[str, str]:
        """The error as a signaling message."""
        return {"type": "error", "code": self.code, "message": self.message}
