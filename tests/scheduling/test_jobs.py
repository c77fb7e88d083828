"""Persistent jobs: reminders survive a restart and are sent exactly once; one scheduler runs."""
from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from foundation.config import Settings
from scheduling.scheduler import JobRun, run_job
from server.app import create_app
from tests.conftest import Inbox, Running, add_staff, log_in, started


async def _reminders(running: Running) -> list[dict[str, Any]]:
    client = await log_in(running)
    rows = (await client.get("/api/outbox")).json()
    return [r for r in rows if r["kind"].startswith("reminder")]


async def test_reminders_survive_restart_and_are_sent_once(
    make_settings: Callable[..., Settings], smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    settings = make_settings(smtp_host="127.0.0.1", smtp_port=port, reminder_offsets_s=(55, 54))
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=60)

    async with started(settings) as running:
        await add_staff(running)
        client = await log_in(running)
        await client.post("/api/experts", json={"name": "李敏", "role": "lawyer", "email": "limin@example.cn"})
        dispute = (await client.post("/api/disputes", json={
            "title": "租房押金", "dispute_type": "rental",
            "parties": [{"name": "赵小燕", "side": "applicant", "email": "zhao@example.cn"}]})).json()
        booked = await client.post("/api/sessions", json={
            "dispute_id": dispute["id"], "start": start.isoformat(), "end": (start + dt.timedelta(hours=1)).isoformat(),
            "experts": [{"expert_id": 1}], "override_availability": True})
        assert booked.status_code == 201
        jobs = {job.id for job in running.app.state.jobs.scheduler.get_jobs()}
        assert {"session-1-remind-55", "session-1-remind-54"} <= jobs
        assert await _reminders(running) == []

    # The server is down while both reminders fall due.
    await asyncio.sleep(max(0.0, (start - dt.timedelta(seconds=53) - dt.datetime.now(dt.timezone.utc)).total_seconds()))

    async with started(settings) as running:
        client = await log_in(running)
        for _ in range(200):
            everything = (await client.get("/api/outbox")).json()
            rows = [r for r in everything if r["kind"].startswith("reminder")]
            if len(rows) == 4 and all(r["status"] == "sent" for r in everything):
                break  # the reminders, and the invitations left pending at the stop
            await asyncio.sleep(0.1)
        keys = sorted(r["key"] for r in rows)
        assert len(keys) == 4 and len(set(keys)) == 4  # 2 reminders x 2 people, each once
    mails = await inbox.wait_for(6)  # 2 invitations (left pending at the stop) + 4 reminders

    async with started(settings) as running:  # and a further restart sends nothing again
        await asyncio.sleep(1)
        assert len(await _reminders(running)) == 4
    reminders = [m for m in inbox.messages if "调解即将开始" in m["Subject"]]
    assert sorted(m["To"] for m in reminders) == ["limin@example.cn", "limin@example.cn", "zhao@example.cn", "zhao@example.cn"]
    assert len(inbox.messages) == len(mails)


async def test_only_one_process_runs_jobs(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    a, b = create_app(settings), create_app(settings)
    async with a.router.lifespan_context(a):
        async with b.router.lifespan_context(b):
            assert a.state.jobs.leader and not b.state.jobs.leader
            await b.state.jobs.renew()
            assert not b.state.jobs.leader
            # b can still add jobs to the shared store; a sees them.
            future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)
            b.state.jobs.schedule_session(99, future, future + dt.timedelta(hours=1))
            assert a.state.jobs.scheduler.get_job("session-99-open") is not None
        assert a.state.jobs.leader


async def test_lease_passes_on_when_the_leader_stops(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    a, b = create_app(settings), create_app(settings)
    async with b.router.lifespan_context(b):
        async with a.router.lifespan_context(a):
            assert b.state.jobs.leader and not a.state.jobs.leader
        await asyncio.sleep(0)
    # b stopped last; now start a alone again: it leads at once.
    async with a.router.lifespan_context(a):
        assert a.state.jobs.leader


# A job function of the tests' own (the store keeps a reference to it by name): it counts its
# runs and fails while FAILING is set, as a job whose holder dies mid-way leaves no work behind.
RUNS: list[int] = []
FAILING: list[bool] = []


async def counted(db: Any, n: int) -> None:
    if FAILING:
        raise RuntimeError("the job's work fails")
    RUNS.append(n)


async def _wait_until(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_a_due_job_runs_once_even_when_fired_twice(make_settings: Callable[..., Settings]) -> None:
    RUNS.clear()
    settings = make_settings()
    async with started(settings) as running:
        jobs = running.app.state.jobs
        due = dt.datetime.now(dt.timezone.utc)
        jobs.once("counted", counted, due, (7,), grace_s=3600)
        args = jobs.scheduler.get_job("counted").args
        await _wait_until(lambda: jobs.scheduler.get_job("counted") is None)  # done: out of the store
        assert RUNS == [7]
        # Added again for the same time (every node's start-up re-adds pending follow-ups).
        jobs.once("counted", counted, due, (7,), grace_s=3600)
        await _wait_until(lambda: jobs.scheduler.get_job("counted") is None)
        assert RUNS == [7]
        # The same due time fired again, twice at once (a retry after the commit, or a second
        # holder during a lease hand-over): the job_runs row refuses both.
        await asyncio.gather(run_job(*args), run_job(*args))
        assert RUNS == [7]
        async with running.app.state.db_sessions() as db:
            runs = (await db.scalars(select(JobRun))).all()
        assert [(r.job_id, r.holder) for r in runs if r.job_id == "counted"] == [("counted", jobs.holder)]


async def test_a_job_left_unfinished_is_run_by_the_next_holder(make_settings: Callable[..., Settings]) -> None:
    RUNS.clear()
    FAILING.append(True)
    settings = make_settings()
    a, b = create_app(settings), create_app(settings)
    try:
        async with a.router.lifespan_context(a):
            jobs = a.state.jobs
            jobs.once("counted", counted, dt.datetime.now(dt.timezone.utc), (8,), grace_s=3600)
            # It fails, and stays in the store for its retry a minute later.
            await _wait_until(lambda: jobs.scheduler.get_job("counted").next_run_time > dt.datetime.now(dt.timezone.utc)
                              + dt.timedelta(seconds=30))
            assert RUNS == []
        FAILING.clear()
        async with b.router.lifespan_context(b):  # the next holder retries it at once
            assert b.state.jobs.leader
            await _wait_until(lambda: b.state.jobs.scheduler.get_job("counted") is None)
            assert RUNS == [8]
    finally:
        FAILING.clear()


async def test_jobs_added_together_wake_the_scheduler_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import inspect

    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.schedulers.base import BaseScheduler

    from scheduling.scheduler import _Scheduler

    # The wake-up repeats the body of APScheduler's own (pinned): it still reads so, and
    # adding a job still ends by waking the scheduler.
    assert [line.strip() for line in inspect.getsource(AsyncIOScheduler.wakeup).splitlines()[-3:]] == [
        "self._stop_timer()", "wait_seconds = self._process_jobs()", "self._start_timer(wait_seconds)"]
    assert [line.strip() for line in inspect.getsource(BaseScheduler._real_add_job).splitlines()[-2:]] == [
        "if self.state == STATE_RUNNING:", "self.wakeup()"]
    scheduler = _Scheduler(timezone=dt.timezone.utc)
    scheduler.start()
    woken = []
    process = scheduler._process_jobs
    monkeypatch.setattr(scheduler, "_process_jobs", lambda: woken.append(1) or process())
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    ran = asyncio.Event()
    for n in range(4):
        scheduler.add_job(ran.set, "date", run_date=later + dt.timedelta(minutes=n), id=f"job-{n}")
    for _ in range(3):
        await asyncio.sleep(0)
    assert woken == [1]
    # Jobs due after the wake-up now planned (for job-0) leave it to find them ...
    for n in range(4):
        scheduler.add_job(ran.set, "date", run_date=later + dt.timedelta(days=1, minutes=n), id=f"later-{n}")
    for _ in range(3):
        await asyncio.sleep(0)
    assert woken == [1]
    # ... and one due before it wakes the scheduler to plan again.
    scheduler.add_job(ran.set, "date", run_date=later - dt.timedelta(minutes=30), id="sooner")
    for _ in range(3):
        await asyncio.sleep(0)
    assert woken == [1, 1]
    # and a job due now still runs at once
    scheduler.add_job(ran.set, "date", run_date=dt.datetime.now(dt.timezone.utc), id="now")
    await asyncio.wait_for(ran.wait(), 5)
    scheduler.shutdown(wait=False)


async def test_a_sessions_jobs_are_written_in_one_transaction(make_settings: Callable[..., Settings]) -> None:
    from sqlalchemy import event

    settings = make_settings()
    async with started(settings) as running:
        jobs = running.app.state.jobs
        transactions: list[int] = []
        event.listen(jobs._store.engine, "begin", lambda connection: transactions.append(1))
        start = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3)
        jobs.schedule_session(41, start, start + dt.timedelta(hours=1))
        assert len(transactions) == 1
        ids = sorted(job.id for job in jobs.scheduler.get_jobs() if job.id.startswith("session-41-"))
        assert ids == ["session-41-close", "session-41-open", "session-41-remind-86400", "session-41-remind-900"]
        # Moved: the same four jobs at the new time, again in one transaction.
        jobs.schedule_session(41, start + dt.timedelta(days=1), start + dt.timedelta(days=1, hours=1))
        assert len(transactions) == 3  # the listing above read the store once
        opening = jobs.scheduler.get_job("session-41-open")
        assert opening.next_run_time > start + dt.timedelta(hours=12)


def test_jobs_stored_before_the_scheduler_had_its_own_module_still_load() -> None:
    """A job store written before scheduling/scheduler.py names `scheduling.jobs:run_job`."""
    from apscheduler.util import obj_to_ref, ref_to_obj

    assert ref_to_obj("scheduling.jobs:run_job") is run_job
    assert ref_to_obj("scheduling.jobs:remind") is ref_to_obj(obj_to_ref(ref_to_obj("scheduling.jobs:remind")))
