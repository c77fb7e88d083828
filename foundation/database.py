"""Database engine, session factory, declarative base and migrations."""
from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
from pathlib import Path
from typing import IO, Any

from sqlalchemy import DateTime, event, text
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.types import TypeDecorator

from foundation._sqlite_hooks import one_trip_per_statement

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores aware datetimes as naive UTC and gives them back aware, on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of every table."""


def utcnow() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.timezone.utc)


async def database_now(db: AsyncSession) -> dt.datetime:
    """The database's clock, aware UTC: nodes that compare times written by each other (their
    heartbeats, placements) read this one clock, not each their own."""
    if db.bind is not None and db.bind.dialect.name == "postgresql":
        value = await db.scalar(text("SELECT now()"))
        assert isinstance(value, dt.datetime)
        return value.astimezone(dt.timezone.utc)
    return utcnow()


def iso_utc(value: dt.datetime | None) -> str | None:
    """ISO 8601 text of a time in UTC (None stays None)."""
    return value.astimezone(dt.timezone.utc).isoformat() if value is not None else None


# Execution option for a transaction that only reads (reports): on SQLite it begins DEFERRED
# and so never waits for, or holds up, writers (WAL gives it a consistent snapshot); on
# PostgreSQL it is a READ ONLY, REPEATABLE READ transaction (one snapshot for the whole report).
READ_ONLY = "tiaojie_read_only"


class ReadOnlyWrite(RuntimeError):
    """A read-only transaction (a GET request, a report) tried to write: a bug, never data loss."""


async def read_only(db: AsyncSession) -> None:
    """Make this session's coming transaction a read-only snapshot (call before its first
    statement); a flush that would write in it raises ReadOnlyWrite, on every database."""
    db.info[READ_ONLY] = True
    options: dict[str, Any] = {READ_ONLY: True}
    if db.bind is not None and db.bind.dialect.name == "postgresql":
        options.update(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    await db.connection(execution_options=options)


def create_engine(url: str) -> AsyncEngine:
    """An async engine; on SQLite with WAL, foreign keys, a busy timeout and write-locking BEGIN."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Keep enough connections open for a busy office: one beyond the pool is opened and
        # closed again per use, and opening one (the PRAGMAs below) costs more than a read.
        engine = create_async_engine(url, connect_args={"timeout": 30}, pool_size=20, max_overflow=20)
        _configure_sqlite(engine)
        return engine
    return create_async_engine(url, pool_pre_ping=True)


def _configure_sqlite(engine: AsyncEngine) -> None:
    # pysqlite's own transaction handling is off so that we can say BEGIN IMMEDIATE: every
    # transaction takes SQLite's write lock up front, so two concurrent bookings serialize
    # instead of both reading "free" and then failing (or worse, both writing). WAL keeps
    # readers outside transactions unblocked.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        one_trip_per_statement(dbapi_connection)  # foundation/_sqlite_hooks.py
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A long report only reads: it must not hold the write lock (see `READ_ONLY`).
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")


def create_session_factory(
    engine: AsyncEngine, session_class: type[Session] = Session
) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit (the app passes audit's session class)."""
    if not event.contains(session_class, "before_flush", _refuse_writes):
        event.listen(session_class, "before_flush", _refuse_writes)
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=session_class)


def _refuse_writes(session: Session, _context: Any, _instances: Any) -> None:
    if session.info.get(READ_ONLY) and (session.new or session.dirty or session.deleted):
        raise ReadOnlyWrite("a read-only transaction tried to write")


async def insert_first(db: AsyncSession, row: Base) -> bool:
    """Insert the row in a savepoint; False if its key is taken, by a committed row or by another
    transaction's insert that commits first (PostgreSQL makes this one wait for it)."""
    try:
        async with db.begin_nested():
            db.add(row)
    except IntegrityError:
        return False
    return True


# Nodes that start together create tables one at a time: on PostgreSQL each takes this lock for
# its transaction (the next one then finds the tables made); SQLite's write lock does the same.
SCHEMA_LOCK = 0x7469616F6A6965  # "tiaojie"


def lock_schema(connection: Connection) -> None:
    """Wait for, and hold until the transaction ends, the right to change the schema."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})


class DataInUse(RuntimeError):
    """Another server already serves this SQLite database."""


def hold_sqlite(url: str, who: str) -> IO[str] | None:
    """Take the one-server lock of a SQLite database (a file beside it, `fcntl.flock`), writing
    `who` into it; the open lock file, to keep while serving (the lock goes with the process,
    however it ends). None for PostgreSQL, whose nodes share it on purpose. DataInUse, naming
    the running server, when another process holds it: two servers on one SQLite file would
    each keep their own rooms, and a host on one and an expert on the other would never meet."""
    import fcntl

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    path = Path(parsed.database).resolve().with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - kept open for the life of the server
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise DataInUse(f"{holder} already serves {parsed.database}. One server per SQLite database: stop it first, "
                        "or run several nodes on PostgreSQL (README, \"Several nodes\").") from None
    handle.seek(0)
    handle.truncate()
    handle.write(who)
    handle.flush()
    return handle


def upgrade_database(url: str) -> None:
    """Bring the schema to the newest Alembic revision (synchronous; run before serving)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(config, "head")
        return
    # Alembic's env runs its own event loop: inside a running one, give it a thread.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(command.upgrade, config, "head").result()
