"""foundation/_sqlite_hooks.py: statements of a write transaction on the event loop, the others in
one trip each to aiosqlite's thread, all with the rows, counts and errors SQLAlchemy expects; and
the private parts it uses are still there."""
from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text, update
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_connection
from sqlalchemy.exc import IntegrityError

from foundation.database import create_engine, create_session_factory, read_only

ROOT = Path(__file__).resolve().parents[2]
things = Table("things", MetaData(), Column("id", Integer, primary_key=True), Column("name", String, unique=True))


def test_the_parts_it_uses_are_pinned_and_present() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    for package in ("sqlalchemy", "aiosqlite"):
        pinned = re.search(rf'"{package}(?:\[\w+\])?==([\d.]+)"', pyproject, re.IGNORECASE)
        assert pinned and pinned.group(1) == version(package), package
    assert "_execute_mutex" in AsyncAdapt_dbapi_connection.__slots__
    assert AsyncAdapt_aiosqlite_connection.__slots__ == ()  # so its class can be swapped for a subclass
    assert callable(aiosqlite.Connection._execute) and isinstance(aiosqlite.Connection.__dict__["_conn"], property)


async def test_statements_give_rows_counts_and_errors_on_the_loop_or_in_one_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/hooks.db")
    sessions = create_session_factory(engine)
    async with engine.begin() as connection:
        await connection.run_sync(things.metadata.create_all)
    trips: list[Any] = []
    execute = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(getattr(fn, "__name__", fn))
        return await execute(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    async with sessions() as db, db.begin():
        await db.execute(text("SELECT 1"))  # the transaction begins: BEGIN IMMEDIATE waits in the thread
        assert trips == ["_execute"]
        assert (await db.execute(text("SELECT 41 + 1"))).scalar() == 42
        inserted = await db.execute(insert(things).values(name="调解"))
        assert inserted.inserted_primary_key[0] == 1
        await db.execute(insert(things), [{"name": "回访"}, {"name": "研判"}])  # executemany
        changed = await db.execute(update(things).where(things.c.id > 1).values(name=things.c.name + "！"))
        assert changed.rowcount == 2
        assert list(await db.scalars(select(things.c.name).order_by(things.c.id))) == ["调解", "回访！", "研判！"]
        assert trips == ["_execute"]  # the write lock is held: nothing went to the thread (was one trip each)
    # A read-only transaction (a report, maybe long) keeps the loop free: one trip per statement
    # (was four: cursor, execute, fetchall, close), and its BEGIN DEFERRED one more.
    async with sessions() as db:
        trips.clear()
        await read_only(db)
        assert (await db.execute(text("SELECT 41 + 1"))).scalar() == 42
        assert list(await db.scalars(select(things.c.id).order_by(things.c.id))) == [1, 2, 3]
        assert len(trips) == 3, trips
    with pytest.raises(IntegrityError):
        async with sessions() as db, db.begin():
            await db.execute(insert(things).values(name="调解"))
    async with sessions() as db:
        assert await db.scalar(select(things.c.name).where(things.c.id == 1)) == "调解"
    await engine.dispose()


async def test_a_writer_waiting_for_the_lock_leaves_the_loop_running(tmp_path: Path) -> None:
    import asyncio

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/hooks.db")
    sessions = create_session_factory(engine)
    async with engine.begin() as connection:
        await connection.run_sync(things.metadata.create_all)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    async def second_writer() -> None:
        async with sessions() as db, db.begin():
            await db.execute(insert(things).values(name="回访"))

    async with sessions() as first, first.begin():
        await first.execute(insert(things).values(name="调解"))  # holds the write lock
        ticking = asyncio.create_task(ticker())
        waiting = asyncio.create_task(second_writer())  # its BEGIN IMMEDIATE waits in the thread
        while ticks < 5:  # the loop goes on meanwhile
            await asyncio.sleep(0.005)
        assert not waiting.done()
    await asyncio.wait_for(waiting, 10)
    ticking.cancel()
    async with sessions() as db:
        assert list(await db.scalars(select(things.c.name).order_by(things.c.id))) == ["调解", "回访"]
    await engine.dispose()
