"""The background-task helper: a stop that is itself cancelled does not pretend it finished."""
from __future__ import annotations

import asyncio

import pytest

from foundation.aio import cancel_and_wait


async def test_cancel_and_wait_passes_on_its_callers_cancel() -> None:
    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.5)  # cleans up after the cancel

    task = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    stopping = asyncio.create_task(cancel_and_wait(task))
    await asyncio.sleep(0.1)
    stopping.cancel()  # e.g. a shutdown timeout around the stop
    with pytest.raises(asyncio.CancelledError):
        await stopping
    await cancel_and_wait(task)
    assert task.cancelled()
