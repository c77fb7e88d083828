"""Three nodes on one PostgreSQL database: the scheduled jobs run on one node at a time, and
when that node dies in the middle of its jobs, another runs them: each due job once."""
from __future__ import annotations

import datetime as dt
import time

import psycopg

from tests.cluster.conftest import Cluster, staff_client
from tests.postgres import plain_url

SESSIONS = 3
REMIND_BEFORE_S = 40


def _wait(condition, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_holder_killed_mid_job_leaves_every_job_to_run_once_elsewhere(cluster: Cluster) -> None:
    env = {"TIAOJIE_REMINDER_OFFSETS_S": str(REMIND_BEFORE_S)}
    for name in ("a", "b", "c"):
        cluster.start(name, **env)
    db = psycopg.connect(plain_url(cluster.database_url), autocommit=True)
    holder = db.execute("SELECT holder FROM scheduler_lease").fetchone()[0]
    leader = holder.split("-")[0]
    assert leader == "a"  # the first node up took the lease; the others wait

    # Book through another node: its jobs go into the shared store for the leader to run.
    client = staff_client(cluster.node("b"))
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=REMIND_BEFORE_S + 12)
    for n in range(SESSIONS):
        expert = client.post("/api/experts", json={"name": f"李敏{n}", "role": "lawyer", "email": f"limin{n}@example.cn"}).json()
        dispute = client.post("/api/disputes", json={
            "title": f"租房押金 {n}", "dispute_type": "rental",
            "parties": [{"name": f"赵小燕{n}", "side": "applicant", "email": f"zhao{n}@example.cn"}]}).json()
        booked = client.post("/api/sessions", json={
            "dispute_id": dispute["id"], "start": start.isoformat(), "end": (start + dt.timedelta(hours=1)).isoformat(),
            "experts": [{"expert_id": expert["id"]}], "override_availability": True})
        assert booked.status_code == 201, booked.text
    jobs = [f"session-{n + 1}-remind-{REMIND_BEFORE_S}" for n in range(SESSIONS)]
    stored = {row[0] for row in db.execute("SELECT id FROM apscheduler_jobs")}
    assert set(jobs) <= stored

    # Hold the outbox so that the reminders, once due, stall half-way through their work...
    lock = psycopg.connect(plain_url(cluster.database_url))
    lock.execute("LOCK TABLE outbox IN SHARE ROW EXCLUSIVE MODE")
    waiting = _wait(lambda: db.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE 'INSERT INTO outbox%'"
    ).fetchone()[0], 30, "the reminders to be due and stalled")
    assert waiting >= 1
    # ... and kill the node running them: its uncommitted work is rolled back with its connections.
    cluster.node(leader).kill()
    lock.rollback()
    lock.close()

    # Another node takes the lease once it runs out (3 s here), and runs the reminders.
    def reminders() -> list[tuple[str, str]]:
        return db.execute("SELECT key, recipient FROM outbox WHERE kind LIKE 'reminder%' ORDER BY key").fetchall()

    _wait(lambda: len(reminders()) == 2 * SESSIONS, 60, "the reminders to be queued by another node")
    runs = db.execute("SELECT job_id, holder FROM job_runs WHERE job_id LIKE '%remind%' ORDER BY job_id").fetchall()
    assert [job_id for job_id, _ in runs] == sorted(jobs)
    new_holder = db.execute("SELECT holder FROM scheduler_lease").fetchone()[0]
    assert new_holder.split("-")[0] in ("b", "c")
    assert {h for _, h in runs} == {new_holder}  # none of the dead node's work survived
    # (each leaves the store once its work has committed: just after its reminders appear)
    _wait(lambda: not set(jobs) & {row[0] for row in db.execute("SELECT id FROM apscheduler_jobs")}, 10,
          "the done jobs to leave the store")

    # Nothing runs twice: not after a while, nor when the dead node comes back.
    cluster.node(leader).process.wait()
    cluster.start(f"{leader}2", **env)
    time.sleep(5)
    assert len(reminders()) == 2 * SESSIONS
    assert sorted(r for _, r in reminders()) == sorted(
        [f"{who}{n}@example.cn" for n in range(SESSIONS) for who in ("limin", "zhao")])
    assert db.execute("SELECT count(*) FROM job_runs WHERE job_id LIKE '%remind%'").fetchone()[0] == SESSIONS
    db.close()
