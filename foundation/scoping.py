"""Offices apart: the one rule by which a database session reads and writes only the data of
the offices its user may see.

A table of office data says how its rows belong to offices with a classmethod
`in_offices(offices) -> condition` (a dispute by its `office_id`, a party through its dispute, an
expert through the offices it serves). `limit_to(db, scope)` gives a session a `Scope`; from then
on every ORM SELECT, UPDATE and DELETE it runs carries each table's condition (SQLAlchemy's
`with_loader_criteria`, added in the session's `do_orm_execute` event), `Session.get` and the
loading of relationships included. So a route never filters by office itself and cannot forget
to: another office's dispute is simply not there (404).

Two exceptions, both explicit:
- a statement run with `ACROSS_OFFICES` in its execution options sees every office: the booking
  rules use it, because an expert shared by several offices has one calendar (two offices must
  never book the same hour), and what it reads is times, never shown to the clerk;
- a read-only scope (a supervisor's) refuses every write of office data at the flush, except to
  tables that say `writable_read_only = True` (a supervisor's own account: a new password).

A session without a scope (jobs, the command line, invite links, which carry their own
authority) sees everything, as before.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from foundation.database import Base
from foundation.errors import Forbidden

SCOPE = "tiaojie_scope"
ACROSS_OFFICES = "tiaojie_across_offices"  # execution option: this statement reads every office


@dataclasses.dataclass(frozen=True)
class Scope:
    """The offices (and the levels above them) a user's requests may see, None for all of them;
    `writable` False for someone who only looks (a supervisor, a system administrator)."""

    offices: frozenset[int] | None
    writable: bool = True


def limit_to(db: AsyncSession, scope: Scope | None) -> None:
    """Let this session see only the scope's offices from its next statement on (None: all)."""
    if scope is None:
        db.info.pop(SCOPE, None)
    else:
        db.info[SCOPE] = scope


def scope_of(db: AsyncSession | Session) -> Scope | None:
    """The session's scope, if it has one."""
    scope = db.info.get(SCOPE)
    return scope if isinstance(scope, Scope) else None


def office_tables() -> tuple[type[Any], ...]:
    """Every mapped class that holds office data (it defines `in_offices`)."""
    return _office_tables(len(Base.registry.mappers))


@functools.cache
def _office_tables(_mapped: int) -> tuple[type[Any], ...]:  # again once more tables are mapped
    return tuple(m.class_ for m in Base.registry.mappers if callable(getattr(m.class_, "in_offices", None)))


def _refused(scope: Scope, table: Any) -> bool:
    """Whether a read-only scope refuses writing to this table."""
    return not scope.writable and hasattr(table, "in_offices") and not getattr(table, "writable_read_only", False)


def _add_criteria(state: ORMExecuteState) -> None:
    scope = scope_of(state.session)
    if scope is None or state.is_column_load or state.is_relationship_load:
        return  # relationship loads carry the criteria of the statement that loaded their parents
    if (state.is_insert or state.is_update or state.is_delete) and state.bind_mapper is not None \
            and _refused(scope, state.bind_mapper.class_):
        raise Forbidden("this account may only look at the offices' cases, not change them")
    if scope.offices is None or not (state.is_select or state.is_update or state.is_delete):
        return
    if state.execution_options.get(ACROSS_OFFICES, False):
        return
    state.statement = state.statement.options(*_criteria(scope.offices, office_tables()))


@functools.lru_cache(maxsize=256)
def _criteria(offices: frozenset[int], tables: tuple[type[Any], ...]) -> tuple[Any, ...]:
    """The loader criteria of every office table for these offices: built once and shared by
    every statement (they are immutable), so that a scoped statement costs no more to build
    and finds its compiled form in SQLAlchemy's cache."""
    ids = tuple(sorted(offices))
    return tuple(with_loader_criteria(table, lambda cls: cls.in_offices(ids), include_aliases=True) for table in tables)


def _refuse_foreign_writes(session: Session, _context: Any, _instances: Any) -> None:
    scope = scope_of(session)
    if scope is None:
        return
    for obj in (*session.new, *session.dirty, *session.deleted):
        if not hasattr(type(obj), "in_offices"):
            continue
        if _refused(scope, type(obj)):
            raise Forbidden("this account may only look at the offices' cases, not change them")
        office_id = getattr(obj, "office_id", None)
        if obj in session.new and scope.offices is not None and office_id is not None and office_id not in scope.offices:
            raise Forbidden("this account cannot add data to another office")


event.listen(Session, "do_orm_execute", _add_criteria)
event.listen(Session, "before_flush", _refuse_foreign_writes)


def across_offices(statement: Any) -> Any:
    """The statement, to be run seeing every office (see the module doc for when that is right:
    an expert's one calendar, a name unique in the whole database)."""
    return statement.execution_options(**{ACROSS_OFFICES: True})
