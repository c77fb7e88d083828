"""Transactions on SQLite: writers serialize (BEGIN IMMEDIATE), reports read beside them."""
from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select

from disputes.models import Dispute
from foundation.database import read_only
from tests.conftest import Running


async def test_a_report_does_not_hold_up_writers(running: Running, staff_client: httpx.AsyncClient) -> None:
    async with running.app.state.db_sessions() as report:
        await read_only(report)
        assert await report.scalar(select(func.count(Dispute.id))) == 0  # its transaction is open now
        # A write transaction would hold SQLite's write lock here and the booking would wait
        # for it (30 s busy timeout); a read-only one lets the writer through at once.
        created = await asyncio.wait_for(staff_client.post("/api/disputes", json={
            "title": "噪音扰民", "dispute_type": "neighbour"}), 5)
        assert created.status_code == 201
        assert await report.scalar(select(func.count(Dispute.id))) == 0  # its own snapshot
    async with running.app.state.db_sessions() as later:
        assert await later.scalar(select(func.count(Dispute.id))) == 1


async def test_every_read_goes_past_a_writer_holding_the_lock(running: Running, staff_client: httpx.AsyncClient) -> None:
    await staff_client.post("/api/disputes", json={"title": "噪音扰民", "dispute_type": "neighbour"})
    async with running.app.state.db_sessions() as writer, writer.begin():
        await writer.execute(select(func.count(Dispute.id)))  # BEGIN IMMEDIATE: the write lock is held now
        for path in ("/api/disputes", "/api/experts", "/disputes", "/api/statistics", "/healthz"):
            response = await asyncio.wait_for(staff_client.get(path), 5)
            assert response.status_code == 200, (path, response.status_code)


async def test_a_read_only_transaction_refuses_to_write(running: Running) -> None:
    import pytest

    from foundation.database import ReadOnlyWrite

    async with running.app.state.db_sessions() as db:
        await read_only(db)
        db.add(Dispute(title="不该写入", dispute_type="other"))
        with pytest.raises(ReadOnlyWrite):
            await db.flush()
