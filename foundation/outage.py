"""The database out of reach, or the disk full: telling them from a bug, and logging each once,
not once per request.

While PostgreSQL restarts or the network to it is down, every request, job round and heartbeat
fails the same way. Those failures are not bugs: requests answer 503 (server/app.py), loops try
again, and one `Outage` per process logs one line when the failures begin and one when the
database answers again.
"""
from __future__ import annotations

import errno
import logging
import time

from sqlalchemy.exc import DBAPIError, OperationalError

logger = logging.getLogger(__name__)
# SQLSTATE classes of a server that is gone or going: connection exceptions (08), shutting down
# (57P01 admin, 57P02 crash) or not yet taking connections (57P03).
_DOWN_SQLSTATES = ("08", "57P01", "57P02", "57P03")
_DOWN_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT,
                errno.EPIPE}


def unreachable(exc: BaseException) -> bool:
    """Whether an error means the database cannot be reached now (down, restarting, the network
    cut, a pooled connection gone), rather than a bug in a statement."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, OperationalError) and _server_side(current):
            return True
        if isinstance(current, (ConnectionError, TimeoutError)):
            return True
        if isinstance(current, OSError) and (current.errno in _DOWN_ERRNOS or "Connect call failed" in str(current)
                                             or str(current).startswith("Multiple exceptions")):
            return True
        state = getattr(current, "sqlstate", None)
        if isinstance(state, str) and state.startswith(_DOWN_SQLSTATES):
            return True
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)
    return False


_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def disk_full(exc: BaseException) -> bool:
    """Whether an error means the disk (of the data folder or the database) is full: SQLite's
    SQLITE_FULL, PostgreSQL's disk_full (53100), or a file write's ENOSPC."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _FULL_ERRNOS:
            return True
        if "database or disk is full" in str(current) or getattr(current, "sqlstate", None) == "53100":
            return True
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)
    return False


def _server_side(exc: OperationalError) -> bool:
    """PostgreSQL drivers raise OperationalError for what the server or the network did
    (connection failures, shutdown, out of resources), never for a wrong statement; SQLite uses
    it for wrong statements too, so there only a locked or unopenable database counts."""
    if type(exc.orig).__module__.startswith("sqlite3"):
        return any(words in str(exc.orig) for words in ("database is locked", "unable to open database"))
    return True


class Outage:
    """One process's view of whether the database is reachable, for its log."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.failures = 0  # database failures seen, for /metrics
        self.full_at: float | None = None  # when a write last found the disk full

    def full(self, exc: BaseException, doing: str) -> bool:
        """Note a write that found the disk full (logged once until the disk has room again);
        False if the error is something else."""
        if not disk_full(exc):
            return False
        if self.full_at is None:
            logger.error("the disk is full (%s while %s): nothing new can be saved until there is room", exc, doing)
        self.full_at = time.monotonic()
        return True

    def has_room(self) -> None:
        """The disk has room again: log it, if it was full."""
        if self.full_at is not None:
            logger.warning("the disk has room again")
            self.full_at = None

    def failed(self, exc: BaseException, doing: str) -> bool:
        """Note a failure; True if it is the database out of reach (logged once per outage),
        False if it is something else (the caller logs it as the bug it is)."""
        if not unreachable(exc):
            return False
        self.failures += 1
        if self.since is None:
            self.since = time.monotonic()
            logger.error("the database is unreachable (%s while %s); retrying until it answers",
                         type(exc).__name__, doing)
        return True

    def answered(self) -> None:
        """The database answered: log the end of an outage, if there was one."""
        if self.since is not None:
            logger.warning("the database answers again after %.0f s", time.monotonic() - self.since)
            self.since = None
