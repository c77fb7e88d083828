"""The persistent scheduler (APScheduler 3): its job store, its lease, and jobs that run once.

Jobs live in the project's database (APScheduler's SQLAlchemy job store, table
`apscheduler_jobs`). On SQLite the job store has a file of its own beside the database
(`tiaojie-jobs.sqlite3`): APScheduler 3's store is synchronous and runs on the event loop, and
SQLite has one write lock per file, so a store write waiting for that lock while an async
transaction holds it would stall the loop that transaction needs to finish. APScheduler 3 must not run two schedulers on one job store, so a process
runs jobs only while it holds the scheduler lease (a row in `scheduler_lease`, renewed every few
seconds; a crashed holder's lease runs out). Every process can still add jobs: its scheduler is
started paused, which writes to the store without running anything.

Every due job has its effect exactly once, across nodes and crashes:
- APScheduler takes a one-off job out of its store as it starts it, so a holder that died
  mid-job would lose it. Our jobs instead fire on a `Retry` trigger (at the due time, then again
  every minute) and leave the store only when their work has committed (`Jobs.done`); a new
  lease holder retries at once whatever the old one left unfinished.
- The work runs in one transaction with a row in `job_runs` for (job, due time), whose primary
  key refuses a second run: a retry after a commit, or two holders during a lease hand-over
  (the lease can lapse under a stalled holder), do nothing the second time.

Job functions are module-level (the store pickles references to them), take the job's database
session and ids, and run inside that transaction; the jobs themselves are elsewhere (the
sessions' in `scheduling/jobs.py`, the outcomes' in `outcomes/jobs.py`). They reach the settings through the one
`JobContext` the running app installs: that is the single piece of module state, because
APScheduler 3 offers no other way to hand jobs a context.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import pickle
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.util import datetime_to_utc_timestamp, obj_to_ref, ref_to_obj
from sqlalchemy import String, bindparam, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from foundation.aio import cancel_and_wait
from foundation.config import Settings, node_name
from foundation.database import Base, UTCDateTime, insert_first, lock_schema, utcnow
from foundation.outage import Outage

if TYPE_CHECKING:
    from scheduling.models import MediationSession, Participant

logger = logging.getLogger(__name__)
LEASE_NAME = "scheduler"
# A job whose work has not committed is tried again this often (a failure, or a holder that died).
RETRY_S = 60


class SchedulerLease(Base):
    """Which process runs the jobs, until when."""

    __tablename__ = "scheduler_lease"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class JobRun(Base):
    """A job's work for one due time, committed with that work: it is never done twice."""

    __tablename__ = "job_runs"

    job_id: Mapped[str] = mapped_column(String(191), primary_key=True)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    done_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Retry(BaseTrigger):
    """Fires at `due`, then every RETRY_S until the job is done (it leaves the store); the
    last try is at the end of the grace period."""

    def __init__(self, due: dt.datetime, grace_s: int) -> None:
        self.due, self.grace_s = due, grace_s

    def get_next_fire_time(self, previous_fire_time: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
        if previous_fire_time is None:
            return self.due
        last = self.due + dt.timedelta(seconds=self.grace_s)
        if previous_fire_time >= last:
            return None
        return min(previous_fire_time + dt.timedelta(seconds=RETRY_S), last)

    def __repr__(self) -> str:
        return f"<Retry due={self.due.isoformat()}>"


async def claim(db: AsyncSession, job_id: str, due_at: dt.datetime, holder: str) -> bool:
    """Mark (job, due time) as run in this transaction; False if it already ran (or another
    holder's run of it commits first: PostgreSQL makes this insert wait for theirs)."""
    return await insert_first(db, JobRun(job_id=job_id, due_at=due_at, holder=holder))


async def try_lease(db: AsyncSession, holder: str, ttl_s: int) -> bool:
    """Take or renew the lease if it is free, expired or ours."""
    now = utcnow()
    lease = await db.get(SchedulerLease, LEASE_NAME, with_for_update=True)
    if lease is None:
        # Two nodes starting at once both find no lease: the first insert wins.
        return await insert_first(db, SchedulerLease(name=LEASE_NAME, holder=holder, expires_at=now + dt.timedelta(seconds=ttl_s)))
    if lease.holder != holder and lease.expires_at > now:
        return False
    lease.holder = holder
    lease.expires_at = now + dt.timedelta(seconds=ttl_s)
    return True


async def release_lease(db: AsyncSession, holder: str) -> None:
    """Give the lease up at shutdown, so another process can take over at once."""
    lease = await db.get(SchedulerLease, LEASE_NAME, with_for_update=True)
    if lease is not None and lease.holder == holder:
        await db.delete(lease)


@dataclasses.dataclass
class JobContext:
    """What jobs need from the running app."""

    sessions: async_sessionmaker[AsyncSession]
    settings: Settings
    link_for: Callable[[MediationSession, Participant], str]
    after_queue: Callable[[], None]
    # Set by `Jobs`: who runs the jobs, and what to do once a job's work has committed.
    holder: str = ""
    done: Callable[[str, dt.datetime], None] = lambda job_id, due_at: None
    # Told how late each job started (seconds after it was due), for /metrics.
    started_late: Callable[[float], None] = lambda seconds: None


_context: JobContext | None = None


def jobstore_url(url: str) -> str:
    """The job store's synchronous URL for the app's async database URL (see the module doc)."""
    if url.startswith("sqlite+aiosqlite:///"):
        path = url.removeprefix("sqlite+aiosqlite:///")
        stem, dot, suffix = path.rpartition(".")
        return f"sqlite:///{stem}-jobs.{suffix}" if dot else f"sqlite:///{path}-jobs"
    return url.replace("postgresql+asyncpg", "postgresql+psycopg")


def jobstore_engine(url: str) -> Engine:
    """The job store's synchronous engine. On SQLite in WAL mode with synchronous=NORMAL: the
    store writes on the event loop (four jobs a booking), and a rollback journal's fsync per
    write stalled every request in flight behind each booking."""
    sqlite = url.startswith("sqlite")
    # A connection from before a database server's restart is replaced (a SQLite file has none).
    engine = create_engine(jobstore_url(url), pool_pre_ping=not sqlite)
    if sqlite:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()
    return engine


class _JobStore(SQLAlchemyJobStore):
    """APScheduler's SQLAlchemy job store, writing a job with one statement built once (the
    store builds, and SQLAlchemy keys and looks up, a new statement for every write: most of
    the CPU of a booking's four jobs), and the jobs added `together` in one statement."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine=engine)
        self._insert = self.jobs_t.insert()
        self._update = self.jobs_t.update().where(self.jobs_t.c.id == bindparam("job_id"))
        upsert = (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(self.jobs_t)
        self._upsert = upsert.on_conflict_do_update(
            index_elements=[self.jobs_t.c.id],
            set_={"next_run_time": upsert.excluded.next_run_time, "job_state": upsert.excluded.job_state})
        self._held: list[dict[str, Any]] | None = None

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """Hold the jobs added meanwhile and write them in one transaction at the end, each
        replacing a job of the same id (as every add of `Jobs` does)."""
        self._held = []
        try:
            yield
            rows = self._held
        finally:
            self._held = None
        if rows:
            with self.engine.begin() as connection:
                connection.execute(self._upsert, rows)

    def _row(self, job: Job) -> dict[str, Any]:
        return {"next_run_time": datetime_to_utc_timestamp(job.next_run_time),
                "job_state": pickle.dumps(job.__getstate__(), self.pickle_protocol)}

    def add_job(self, job: Job) -> None:
        if self._held is not None:
            self._held.append({"id": job.id, **self._row(job)})
            return
        with self.engine.begin() as connection:
            try:
                connection.execute(self._insert, {"id": job.id, **self._row(job)})
            except IntegrityError:
                raise ConflictingIdError(job.id) from None

    def update_job(self, job: Job) -> None:
        with self.engine.begin() as connection:
            if connection.execute(self._update, {"job_id": job.id, **self._row(job)}).rowcount == 0:
                raise JobLookupError(job.id)


class _Scheduler(AsyncIOScheduler):
    """APScheduler's asyncio scheduler, woken less often: a booking adds four jobs, and each
    wake-up reads the job store twice. Jobs added together wake it once, and a job due no
    sooner than the wake-up already planned does not wake it at all (that wake-up finds it).
    This repeats the body of apscheduler 3.11's `wakeup` and reads its `_timeout`; it is
    pinned below 3.12 in pyproject.toml."""

    _waking = False
    _adding = False

    def _real_add_job(self, job: Job, jobstore_alias: str, replace_existing: bool) -> None:
        self._adding = True  # APScheduler wakes the scheduler for every job it adds: not here
        try:
            super()._real_add_job(job, jobstore_alias, replace_existing)
        finally:
            self._adding = False
        if self.state == STATE_RUNNING and not self._woken_by(job.next_run_time):
            self.wakeup()

    def _woken_by(self, due: dt.datetime | None) -> bool:
        """Whether the scheduler wakes by `due` anyway (a paused job, due None, never needs it)."""
        if due is None or self._waking:
            return True
        timer = self._timeout
        return timer is not None and timer.when() <= self._eventloop.time() + (due - utcnow()).total_seconds()

    def wakeup(self) -> None:
        if not self._waking and not self._adding:
            self._waking = True
            self._eventloop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._waking = False
        self._stop_timer()
        self._start_timer(self._process_jobs())


class Scheduler:
    """The scheduler of one process, with its lease; `Jobs` (scheduling/jobs.py) adds the sessions' jobs."""

    def __init__(self, settings: Settings, context: JobContext, outage: Outage | None = None) -> None:
        self.settings = settings
        self.context = context
        self._outage = outage or Outage()
        self._resync = False  # jobs could not be stored: the next renewal puts back what is missing
        # The node's name first, so that the lease row says which node runs the jobs.
        self.holder = f"{node_name(settings)[:55]}-{uuid.uuid4().hex[:8]}"
        context.holder, context.done = self.holder, self.done
        self._store = _JobStore(jobstore_engine(settings.database_url))
        self.scheduler = _Scheduler(
            jobstores={"default": self._store},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
            timezone=dt.timezone.utc,
        )
        self.leader = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start paused, then run jobs whenever this process holds the lease."""
        global _context
        _context = self.context
        # APScheduler creates its table at start: nodes starting together take turns at it.
        with self._store.engine.begin() as connection:
            lock_schema(connection)
            self._store.jobs_t.create(connection, checkfirst=True)
        self.scheduler.start(paused=True)
        if self.settings.run_scheduler:
            await self.renew()
            self._task = asyncio.create_task(self._keep_lease(), name="scheduler-lease")

    async def stop(self) -> None:
        """Stop running jobs and give up the lease."""
        global _context
        await cancel_and_wait(self._task)
        self.scheduler.shutdown(wait=False)
        if self.leader:
            async with self.context.sessions() as db, db.begin():
                await release_lease(db, self.holder)
        self.leader = False
        if _context is self.context:
            _context = None

    async def _keep_lease(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self.settings.scheduler_lease_s / 6))
            try:
                await self.renew()
                self._outage.answered()
            except Exception as exc:
                if not self._outage.failed(exc, "renewing the scheduler lease"):
                    logger.exception("scheduler lease renewal failed")

    async def renew(self) -> None:
        """Take or renew the lease now; run jobs while holding it, pause when it is lost."""
        async with self.context.sessions() as db, db.begin():
            leading = await try_lease(db, self.holder, self.settings.scheduler_lease_s)
        if leading and not self.leader:
            logger.info("this process now runs the scheduled jobs (lease %s)", self.holder)
            self.leader = True
            await self.resync()
            self._retry_unfinished()
            self.scheduler.resume()
        elif not leading and self.leader:
            logger.warning("scheduler lease lost; pausing jobs")
            self.leader = False
            self.scheduler.pause()
        elif leading:
            if self._resync:
                await self.resync()
            self.scheduler.wakeup()  # pick up jobs that other processes added

    def _retry_unfinished(self) -> None:
        """Jobs already due but still in the store were left unfinished by the last holder (or
        failed): run them now rather than at their next retry."""
        now = utcnow()
        for job in self.scheduler.get_jobs():
            if isinstance(job.trigger, Retry) and job.trigger.due <= now and job.next_run_time > now:
                job.modify(next_run_time=now)

    async def resync(self) -> None:
        """Put back every job the database says should exist (after a crash between a commit and
        its add, or an outage that kept jobs from the store): what `Jobs` schedules."""
        self._resync = False

    def once(self, job_id: str, func: Callable[..., Awaitable[None]], run_at: dt.datetime, args: tuple[Any, ...], grace_s: int) -> None:
        """Run a module-level job function once at run_at (at once if that has passed, unless by
        more than its grace period). Adding it again changes nothing once it has run for run_at."""
        if run_at + dt.timedelta(seconds=grace_s) > utcnow():
            self._add(job_id, func, run_at, args, grace_s)

    def weekly(self, job_id: str, func: Callable[..., Awaitable[None]], day: str, hour: int, grace_s: int) -> None:
        """Run a module-level job function every week on that day and hour (office time)."""
        week = (day, hour, self.settings.timezone)
        existing = self.scheduler.get_job(job_id)
        if existing is not None and existing.args[:1] == (obj_to_ref(func),) and existing.args[3:4] == (week,):
            return  # keep the pending week's due time (a restart must not skip or repeat one)
        self._add(job_id, func, _next_week(week, utcnow()), (), grace_s, week)

    def _add(self, job_id: str, func: Callable[..., Awaitable[None]], due: dt.datetime, args: tuple[Any, ...],
             grace_s: int, week: tuple[str, int, str] | None = None) -> None:
        self.scheduler.add_job(
            run_job, Retry(due, grace_s), args=(obj_to_ref(func), job_id, due, week, grace_s, *args),
            id=job_id, replace_existing=True, misfire_grace_time=grace_s,
        )

    def done(self, job_id: str, due_at: dt.datetime) -> None:
        """A job's work for due_at has committed: take it out of the store (a weekly job moves
        on to the next week), unless it has been moved to another time since."""
        job = self.scheduler.get_job(job_id)
        if job is None or job.args[2] != due_at:
            return
        ref, _, _, week, grace_s, *args = job.args
        if week is None:
            try:
                job.remove()
            except JobLookupError:
                pass
        else:
            self._add(job_id, ref_to_obj(ref), _next_week(week, due_at), tuple(args), grace_s, week)

    @contextlib.contextmanager
    def _or_later(self, doing: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            if not self._outage.failed(exc, doing):
                raise
            self._resync = True


def _next_week(week: tuple[str, int, str], after: dt.datetime) -> dt.datetime:
    day, hour, timezone = week
    trigger = CronTrigger(day_of_week=day, hour=hour, timezone=ZoneInfo(timezone))
    next_time = trigger.get_next_fire_time(None, after + dt.timedelta(seconds=1))
    assert next_time is not None
    utc: dt.datetime = next_time.astimezone(dt.timezone.utc)
    return utc


async def run_job(ref: str, job_id: str, due_at: dt.datetime, week: Any, grace_s: int, *args: Any) -> None:
    """What the scheduler runs: the job function in one transaction with its `job_runs` row,
    then `done` (see the module doc)."""
    del week, grace_s  # read back from the store by `Jobs.done`
    context = job_context()
    context.started_late((utcnow() - due_at).total_seconds())
    async with context.sessions() as db, db.begin():
        if await claim(db, job_id, due_at, context.holder):
            await ref_to_obj(ref)(db, *args)
        else:
            logger.info("job %s for %s already ran", job_id, due_at.isoformat())
    context.after_queue()
    context.done(job_id, due_at)


def job_context() -> JobContext:
    """The running app's context, for job functions (here and in other packages)."""
    if _context is None:
        raise RuntimeError("no running app installed a JobContext")
    return _context
