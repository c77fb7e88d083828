"""SQLite statements without aiosqlite's thread where nothing can wait, one trip where it can.

aiosqlite runs each sqlite3 call in a thread of its own and hands the result back to the event
loop; SQLAlchemy's aiosqlite adapter makes a call each to open a cursor, execute, fetch the rows,
and close the cursor (twice). Each hand-off wakes the thread and then the loop, and on this
2-core machine an async session that runs only `SELECT 1` cost 1.06 ms of CPU. Here:

- Inside a write transaction (after `BEGIN IMMEDIATE`, foundation/database.py), a statement
  runs on the event loop itself: the transaction holds the database's write lock, and in WAL
  mode nothing it then does waits for another connection; its statements are short because
  every other writer waits for them (a booking's: 0.33 ms of CPU each through the thread,
  0.09 ms on the loop).
- Everything else is one call in aiosqlite's thread (cursor, statement, every row and close):
  `BEGIN IMMEDIATE` may wait up to the busy timeout for another writer, a COMMIT may checkpoint
  the WAL into the database file, and a read-only transaction may be a long report, all of
  which would stall the loop.

This reaches into SQLAlchemy's asyncio adapter (`_execute_mutex`, `_rows`, the cursor's slots)
and aiosqlite (`Connection._execute`, `Connection._conn`): both are pinned in pyproject.toml,
and `tests/foundation/test_sqlite_hooks.py` checks that what is used is still there.
"""
from __future__ import annotations

import collections
import sqlite3
import weakref
from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_connection, AsyncAdapt_aiosqlite_cursor
from sqlalchemy.util import EMPTY_DICT

Result = tuple[Any, list[Any], int, int | None]
# aiosqlite connections whose last transaction began with BEGIN IMMEDIATE (it holds the write
# lock while sqlite3 says it is in a transaction).
_writers: weakref.WeakSet[Any] = weakref.WeakSet()


def _execute(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> Result:
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, parameters if parameters is not None else ())
        description = cursor.description
        return description, cursor.fetchall() if description else [], cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class _OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor whose statement, rows and close are one call in aiosqlite's thread."""

    __slots__ = ("_description", "_rowcount", "_lastrowid")

    def __init__(self, adapt_connection: Any) -> None:  # no aiosqlite cursor: one is made per statement
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        return None  # every row is fetched at once anyway

    async def _run(self, operation: Any, parameters: Any, many: bool) -> None:
        async with self._adapt_connection._execute_mutex:
            connection = self._connection
            if connection in _writers and connection._conn.in_transaction:
                result = _execute(connection._conn, operation, parameters, many)
            else:
                result = await connection._execute(_execute, connection._conn, operation, parameters, many)
                if operation == "BEGIN IMMEDIATE":
                    _writers.add(connection)
                elif operation.startswith("BEGIN"):
                    _writers.discard(connection)
            self._description, rows, self._rowcount, self._lastrowid = result
            self._rows = collections.deque(rows)

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._run(operation, parameters, False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Sequence[Any]) -> None:
        await self._run(operation, seq_of_parameters, True)

    async def _async_soft_close(self) -> None:
        return None  # closed in the thread already

    def close(self) -> None:
        self._rows.clear()


class _OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = _OneTripCursor


def one_trip_per_statement(dbapi_connection: Any) -> None:
    """Make an adapted aiosqlite connection (from a "connect" event) run each statement in one
    trip to its thread."""
    if type(dbapi_connection) is AsyncAdapt_aiosqlite_connection:
        dbapi_connection.__class__ = _OneTripConnection
