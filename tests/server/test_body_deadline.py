"""A request body must keep arriving: one trickled a byte at a time is answered 408, and what it
held (the link's upload slot) is free again at once."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest

from foundation.config import Settings
from tests.conftest import Live


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(request_body_base_s=2.0, request_body_min_bps=1000)


async def test_a_trickled_body_is_cut_off_with_408_and_frees_the_upload_slot(live: Live) -> None:
    token = live.token("party")
    where = urlsplit(live.base)
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    path = f"/api/join/{token}/evidence?name=slow.txt"
    writer.write(f"POST {path} HTTP/1.1\r\nHost: {where.netloc}\r\nContent-Type: text/plain\r\n"
                 f"Content-Length: 100000\r\n\r\n".encode())
    await writer.drain()
    began = time.monotonic()

    async def trickle() -> None:
        while True:
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.5)

    sending = asyncio.create_task(trickle())
    try:
        status_line = await asyncio.wait_for(reader.readline(), 20)
    finally:
        sending.cancel()
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 408"), status_line
    assert time.monotonic() - began < 10
    # The slot the slow upload held is free: the same link uploads at once.
    async with httpx.AsyncClient(base_url=live.base) as client:
        uploaded = await client.post(path.replace("slow.txt", "fast.txt"), content="现场照片说明".encode())
    assert uploaded.status_code == 201, uploaded.text
