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
