"""Writing and reading the audit log.

Every flush of an `AuditedSession` writes one audit row per inserted, changed or deleted row of
a table whose model sets `__audited__ = True`: the values before and after, and the actor the
caller put in `session.info["actor"]` (routes do that from the login or the invite link; jobs
and the command line leave the default, "system"). Doing it at the flush means no service can
forget to log a change. The table only ever grows: triggers in the database refuse UPDATE and
DELETE on it (migration 0007).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, event, insert, inspect, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper, Session, object_session

from audit.models import AuditEntry
from foundation.database import Base, iso_utc, utcnow

SYSTEM = "system"


class AuditedSession(Session):
    """A session that logs every change to audited tables (see the module doc)."""


def set_actor(db: AsyncSession, actor: str, office_id: int | None = None) -> None:
    """Who the changes of this database session are made by, and for which office."""
    db.info["actor"] = actor
    db.info[_OFFICE] = office_id


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return iso_utc(value) if value.tzinfo else value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):  # an image: its size, not its bytes
        return f"({len(value)} bytes)"
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return str(value)


HIDDEN = "(hidden)"


def _shown(obj: Any, key: str, value: Any) -> Any:
    """A column's value as the log keeps it: a model's `__audit_secret__` columns (a private
    key, a full identity number) only as whether they are set."""
    return (HIDDEN if value else "") if key in getattr(obj, "__audit_secret__", ()) else _plain(value)


def _values(obj: Any) -> dict[str, Any]:
    state = inspect(obj)
    return {attr.key: _shown(obj, attr.key, state.dict.get(attr.key)) for attr in state.mapper.column_attrs}


def _changes(obj: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    state = inspect(obj)
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for attr in state.mapper.column_attrs:
        history = state.attrs[attr.key].history
        if not history.has_changes():
            continue
        old = _shown(obj, attr.key, history.deleted[0]) if history.deleted else None
        new = _shown(obj, attr.key, history.added[0]) if history.added else None
        if old != new:
            before[attr.key], after[attr.key] = old, new
    return before, after


def _row(obj: Any, session: Session, action: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    state = inspect(obj)
    key = [state.dict.get(column.key) for column in state.mapper.primary_key]
    entity_id = key[0] if len(key) == 1 and isinstance(key[0], int) else None
    office_id = session.info.get(_OFFICE)
    if office_id is None and isinstance(state.dict.get("office_id"), int):  # a job's change to an office's row
        office_id = state.dict["office_id"]
    return {"at": utcnow(), "actor": str(session.info.get("actor", SYSTEM)), "action": action,
            "entity": type(obj).__tablename__, "entity_id": entity_id, "before": before, "after": after,
            "office_id": office_id}


def _log(action: str) -> Callable[[Mapper[Any], Connection, Any], None]:
    def listener(_mapper: Mapper[Any], connection: Connection, obj: Any) -> None:
        session = object_session(obj)
        if not getattr(obj, "__audited__", False) or not isinstance(session, AuditedSession):
            return
        before: dict[str, Any] | None
        after: dict[str, Any] | None
        if action == "update":
            before, after = _changes(obj)
            if not after:
                return
        else:
            before, after = (None, _values(obj)) if action == "create" else (_values(obj), None)
        session.info.setdefault(_PENDING, []).append(_row(obj, session, action, before, after))
    return listener


def _write_pending(session: Session, _context: Any) -> None:
    """At the end of a flush, its audit rows in one statement (in the flush's transaction)."""
    rows = session.info.pop(_PENDING, None)
    if rows:
        session.connection().execute(insert(AuditEntry), rows)


# Mapper events (not the session's flush lists) so that rows deleted as orphans are logged too;
# what they log is written once the flush is done.
_PENDING = "audit_rows"
_OFFICE = "audit_office"
event.listen(Base, "after_insert", _log("create"), propagate=True)
event.listen(Base, "after_update", _log("update"), propagate=True)
event.listen(Base, "after_delete", _log("delete"), propagate=True)
event.listen(AuditedSession, "after_flush", _write_pending)
# A flush that failed half-way logged rows that were never written: they go with its rollback.
event.listen(AuditedSession, "after_soft_rollback", lambda session, _previous: session.info.pop(_PENDING, None))


def log_room_action(db: AsyncSession, session_id: int, kind: str, data: dict[str, Any]) -> None:
    """Log a moderation action in a session's room (admit, mute, remove, end...) by the session's actor."""
    db.add(AuditEntry(actor=str(db.info.get("actor", SYSTEM)), action=f"room.{kind}", entity="mediation_sessions", entity_id=session_id,
                      before=None, after={k: _plain(v) for k, v in data.items()}, office_id=db.info.get(_OFFICE)))


@dataclasses.dataclass(frozen=True)
class Filter:
    """Which audit rows to list; `before_id` pages backwards from an earlier page's last id."""

    entity: str | None = None
    entity_id: int | None = None
    actor: str | None = None
    action: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    before_id: int | None = None
    limit: int = 100


async def entries(db: AsyncSession, where: Filter) -> list[dict[str, Any]]:
    """Audit rows, newest first."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(max(1, min(where.limit, 500)))
    if where.entity:
        query = query.where(AuditEntry.entity == where.entity)
    if where.entity_id is not None:
        query = query.where(AuditEntry.entity_id == where.entity_id)
    if where.actor:
        query = query.where(or_(AuditEntry.actor == where.actor, AuditEntry.actor.startswith(where.actor + ":")))
    if where.action:
        query = query.where(AuditEntry.action == where.action)
    if where.since is not None:
        query = query.where(AuditEntry.at >= where.since)
    if where.until is not None:
        query = query.where(AuditEntry.at < where.until)
    if where.before_id is not None:
        query = query.where(AuditEntry.id < where.before_id)
    rows = list(await db.scalars(query))
    names = await _actor_names(db, {e.actor for e in rows})
    return [
        {"id": e.id, "at": iso_utc(e.at), "actor": e.actor, "actor_name": names.get(e.actor, ""),
         "action": e.action, "entity": e.entity, "entity_id": e.entity_id, "before": e.before, "after": e.after}
        for e in rows
    ]


# Where an actor's name is, by kind: looked up by table name, as a foreign key names its table,
# so that the audit log, beneath every package whose rows it records, imports none of them.
ACTOR_NAMES = {"staff": ("staff_users", "username"), "expert": ("experts", "name"),
               "participant": ("participants", "display_name")}


async def _actor_names(db: AsyncSession, actors: set[str]) -> dict[str, str]:
    ids: dict[str, list[int]] = {"staff": [], "expert": [], "participant": []}
    for actor in actors:
        kind, _, number = actor.partition(":")
        if kind in ids and number.isdigit():
            ids[kind].append(int(number))
    names: dict[str, str] = {}
    for kind, (table_name, name_column) in ACTOR_NAMES.items():
        table = Base.metadata.tables[table_name]
        column, name = table.c.id, table.c[name_column]
        if ids[kind]:
            for number, text in await db.execute(select(column, name).where(column.in_(ids[kind]))):
                names[f"{kind}:{number}"] = text
    return names
