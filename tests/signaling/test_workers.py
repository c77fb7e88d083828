"""The web process's hold on its media workers: a line it cannot read, or a handler that fails,
costs that line only; the worker and its rooms go on. A start-up that fails leaves no worker."""
from __future__ import annotations

import asyncio
import multiprocessing
from typing import Any

import pytest

from foundation.config import Settings
from server.app import create_app
from signaling.cluster.workers import WorkerHub


async def test_a_bad_line_or_a_failing_handler_costs_that_line_only() -> None:
    records: list[dict[str, Any]] = []

    async def record(room: str, event: dict[str, Any]) -> None:
        if event.get("kind") == "explode":
            raise RuntimeError("the database is away")
        records.append(event)

    hub = WorkerHub(1, record=record)
    await hub.start()
    try:
        worker = hub._workers[0]
        pid = worker.process.pid
        delivered: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            delivered.append(message)

        hub._senders["p1"] = send
        assert worker.reader is not None
        for line in (b"not json at all\n", b'{"op": "emit"}\n', b"[1, 2]\n",
                     b'{"op": "record", "room": "7", "event": {"kind": "explode"}}\n',
                     b'{"op": "emit", "peer": "p1", "message": {"type": "hello"}}\n',
                     b'{"op": "record", "room": "7", "event": {"kind": "join", "peer_id": "p1"}}\n'):
            worker.reader.feed_data(line)  # as if the worker had written it
        for _ in range(100):
            if delivered and records:
                break
            await asyncio.sleep(0.02)
        assert delivered == [{"type": "hello"}] and records == [{"kind": "join", "peer_id": "p1"}]
        assert hub._workers[0] is worker and worker.process.pid == pid and worker.process.is_alive()
    finally:
        await hub.close()


async def test_a_start_up_that_fails_leaves_no_media_worker_running(make_settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from scheduling.jobs import Jobs

    async def broken(self: Jobs) -> None:
        raise RuntimeError("the job store cannot be opened")

    monkeypatch.setattr(Jobs, "start", broken)
    settings: Settings = make_settings(media_workers=1)
    app = create_app(settings)
    with pytest.raises(RuntimeError, match="job store"):
        async with app.router.lifespan_context(app):
            pass
    for _ in range(100):
        if not [p for p in multiprocessing.active_children() if p.name.startswith("tiaojie-media")]:
            break
        await asyncio.sleep(0.05)
    assert not [p.name for p in multiprocessing.active_children() if p.name.startswith("tiaojie-media")]


async def test_a_worker_that_says_it_is_overloaded_gets_no_new_room_while_another_can_take_it() -> None:
    hub = WorkerHub(2)
    await hub.start()
    try:
        async def send(message: dict[str, Any]) -> None:
            return None

        first, second = hub._workers
        assert first.reader is not None
        first.reader.feed_data(b'{"op": "overloaded", "busy": true}\n')  # as the worker writes it (overload.py)
        for _ in range(100):
            if hub._overloaded:
                break
            await asyncio.sleep(0.02)
        await hub.join("room-a", "p1", {"kind": "host"}, send)
        assert hub.process_of("room-a") is second.process  # (the emptier worker would have been the first)
        await hub.join("room-b", "p2", {"kind": "host"}, send)
        assert hub.process_of("room-b") is second.process  # still, though it holds more
        first.reader.feed_data(b'{"op": "overloaded", "busy": false}\n')
        for _ in range(100):
            if not hub._overloaded:
                break
            await asyncio.sleep(0.02)
        await hub.join("room-c", "p3", {"kind": "host"}, send)
        assert hub.process_of("room-c") is first.process
    finally:
        await hub.close()


async def test_a_dead_worker_s_place_is_taken_by_the_standby_at_once_and_another_stands_by() -> None:
    hub = WorkerHub(1)
    await hub.start()
    try:
        told: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            told.append(message)

        for _ in range(300):  # (it starts in the background, after the workers)
            if hub._standby is not None:
                break
            await asyncio.sleep(0.05)
        assert hub._standby is not None
        standby = hub._standby.process
        await hub.join("room-a", "p1", {"kind": "host"}, send)
        first = hub.process_of("room-a")
        assert first is not None and first is not standby
        first.kill()
        for _ in range(100):  # no new process to start: the room is on the standby within a moment
            if hub.process_of("room-a") is standby:
                break
            await asyncio.sleep(0.05)
        assert hub.process_of("room-a") is standby
        assert any(m.get("code") == "media_restart" for m in told)
        await hub.join("room-a", "p1", {"kind": "host"}, send)  # the page joins again: on the new worker
        # Killed again before the next standby is ready: a new worker is started, the page told first.
        hub._standby = None  # (as if still starting)
        standby.kill()
        for _ in range(100):
            if sum(m.get("code") == "media_restart" for m in told) == 2:
                break
            await asyncio.sleep(0.05)
        assert sum(m.get("code") == "media_restart" for m in told) == 2
        await hub.join("room-a", "p1", {"kind": "host"}, send)  # (waits for the new worker)
        third = hub.process_of("room-a")
        assert third is not None and third not in (first, standby) and third.is_alive()
        for _ in range(300):
            if hub._standby is not None:
                break
            await asyncio.sleep(0.05)
        assert hub._standby is not None and hub._standby.process not in (first, standby, third)
        assert hub._standby.process.is_alive() and hub.workers_down() == 0
    finally:
        await hub.close()
    assert not standby.is_alive()
