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


async def test_cancel_and_wait_stops_a_task_that_lost_the_cancel() -> None:
    """The outbox's deliverer hung a server's stop this way (a 300 s CI timeout): its SMTP send's
    `wait_for` finished as the cancel came, and the loop went back to waiting for work."""
    result = asyncio.get_running_loop().create_future()

    async def loses_a_cancel() -> None:
        await asyncio.wait_for(result, 10)
        await asyncio.Event().wait()  # the next round's wait, never set

    task = asyncio.create_task(loses_a_cancel())
    await asyncio.sleep(0)
    result.set_result(None)  # the awaited result, and in the same moment the stop's cancel
    async with asyncio.timeout(5):
        await cancel_and_wait(task)
    assert task.cancelled()
