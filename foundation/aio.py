"""Small asyncio helpers shared by the background tasks."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a server's main coroutine on uvloop: the media engine does its work in one callback
    per UDP datagram, and uvloop makes that callback with less overhead than asyncio's own loop
    (bench/media_capacity.py runs its server the same way)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def run_to_end(work: Awaitable[T]) -> T:
    """Await `work` to its end even if the caller is cancelled meanwhile, once or again (as
    `cancel_and_wait` does every few seconds), and then let the cancel through: for bookkeeping
    that must not be cut in half, such as marking a message sent once it has gone."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            cancelled = True
    result = task.result()
    if cancelled:
        raise asyncio.CancelledError
    return result


async def cancel_and_wait(task: asyncio.Task[Any] | None, again_after_s: float = 2.0) -> None:
    """Cancel a background task and wait until it has finished.

    The cancel is repeated every `again_after_s` while the task runs on: Python 3.11's
    `asyncio.wait_for` (which aiosmtplib uses) loses a cancel that arrives as the awaited result
    does, and a loop that then waits for its next round would keep the stop waiting forever."""
    if task is None or task.done():
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=again_after_s)
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # the caller itself is being cancelled, not only the task
