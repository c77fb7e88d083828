"""HTTP for `tiaojie serve`: uvicorn's httptools protocol, with a deadline for a request's headers.

uvicorn closes an idle keep-alive connection, but not one that sends a request's headers a byte
at a time (slowloris): 200 such sockets stayed open for good. Here a request whose headers are
not complete HEADERS_TIMEOUT_S after its first byte (or after the connection opened) is answered
408 and its connection closed. Bodies and WebSockets are not limited by it.
"""
from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADERS_TIMEOUT_S = 10.0
TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class TimedHeaders(HttpToolsProtocol):
    """HttpToolsProtocol that gives up on headers that take longer than `headers_timeout_s`."""

    headers_timeout_s = HEADERS_TIMEOUT_S
    _headers_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_deadline()

    def on_headers_complete(self) -> None:
        self._stop_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def _start_deadline(self) -> None:
        self._stop_deadline()
        self._headers_deadline = self.loop.call_later(self.headers_timeout_s, self._too_slow)

    def _stop_deadline(self) -> None:
        if self._headers_deadline is not None:
            self._headers_deadline.cancel()
            self._headers_deadline = None

    def _too_slow(self) -> None:
        self._headers_deadline = None
        if not self.transport.is_closing():
            self.transport.write(TIMEOUT)
            self.transport.close()
