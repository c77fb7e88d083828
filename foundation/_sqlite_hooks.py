"""One trip to aiosqlite's thread per statement, where SQLAlchemy's adapter makes five.

aiosqlite runs each sqlite3 call in a thread of its own and hands the result back to the event
loop; SQLAlchemy's aiosqlite adapter makes a call each to open a cursor, execute, fetch the rows,
and close the cursor (twice). Each hand-off wakes the thread and then the loop, and on this
2-core machine an async session that runs only `SELECT 1` cost 1.06 ms of CPU. Here a statement
is one call: it opens a sqlite3 cursor, executes, fetches everything and closes, in the thread.

This reaches into SQLAlchemy's asyncio adapter (`_execute_mutex`, `_rows`, the cursor's slots)
and aiosqlite (`Connection._execute`, `Connection._conn`): both are pinned in pyproject.toml,
and `tests/foundation/test_sqlite_hooks.py` checks that what is used is still there.
"""
from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_connection, AsyncAdapt_aiosqlite_cursor
from sqlalchemy.util import EMPTY_DICT

Result = tuple[Any, list[Any], int, int | None]


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
            self._description, rows, self._rowcount, self._lastrowid = await connection._execute(
                _execute, connection._conn, operation, parameters, many)
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
