"""Slow headers (slowloris): a connection whose request headers take too long is answered 408 and
closed; a request that completes is served as usual, and its keep-alive is not cut short."""
from __future__ import annotations

import asyncio

import uvicorn

from foundation.config import Settings
from server.app import create_app
from server.protocol import TimedHeaders
from tests.conftest import free_port


class QuickTimedHeaders(TimedHeaders):
    headers_timeout_s = 0.5


async def test_a_request_whose_headers_never_end_is_closed(settings: Settings) -> None:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                                           http=QuickTimedHeaders))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        slow = [await asyncio.open_connection("127.0.0.1", port) for _ in range(50)]
        for n, (_, writer) in enumerate(slow):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" if n % 2 else b"")  # half say nothing at all
            await writer.drain()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 200")
        answers = await asyncio.wait_for(asyncio.gather(*(r.read() for r, _ in slow)), 5)  # read to EOF: closed
        assert all(answer.startswith(b"HTTP/1.1 408") for answer in answers)
        await asyncio.sleep(1)  # the served request's connection outlives the deadline (keep-alive)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        seen = b""
        while seen.count(b"HTTP/1.1 200") < 1:
            seen += await asyncio.wait_for(reader.read(4096), 5)
            assert seen, "the served connection was closed"
    finally:
        server.should_exit = True
        await serving
