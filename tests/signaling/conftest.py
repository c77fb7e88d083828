"""The media tests play a whole room in one process: the server, and clients that encode and
decode real audio and video. Two settings keep those clients from starving the server:

- uvloop, as the server and its media workers run (`foundation/aio.py`): asyncio's own loop reads
  one datagram per ready socket per turn of the loop, and with the clients' work in the same
  process the server's socket from a publisher overflowed (the kernel's UDP RcvbufErrors),
  losing up to a third of a voice before the server saw it;
- a short GIL switch interval: the clients' codecs run in threads, and with the default 5 ms
  each Opus frame waited behind the loop often enough that a publisher's voice fell up to
  0.6 s behind and then came in a burst.
"""
from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvloop

from tests.signaling.test_forwarding import Harness


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Any]:
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(autouse=True)
def short_switch_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    yield
    sys.setswitchinterval(before)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    """An engine and its clients in one event loop."""
    h = Harness()
    yield h
    await h.close()
