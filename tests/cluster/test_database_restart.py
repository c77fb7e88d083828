"""A node whose PostgreSQL restarts or goes away: bookings that commit never answer 5xx, every
session keeps its jobs, /healthz says 503 with a reason, and the log has one line per outage."""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from foundation.config import Settings
from tests.conftest import add_staff, log_in, started
from tests.postgres import fresh_database, own_postgres_server
from tests.server.test_metrics import samples, value

pytestmark = pytest.mark.postgres


async def _book(client: httpx.AsyncClient, expert_id: int, dispute_id: int, day: int) -> httpx.Response:
    start = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=day)).replace(microsecond=0)
    return await client.post("/api/sessions", json={
        "dispute_id": dispute_id, "start": start.isoformat(), "end": (start + dt.timedelta(minutes=60)).isoformat(),
        "experts": [{"expert_id": expert_id}], "override_availability": True})


async def test_bookings_and_jobs_through_a_restart_and_an_outage(
    make_settings: Callable[..., Settings], caplog: Any,
) -> None:
    with own_postgres_server() as server, fresh_database(server.url) as url:
        async with started(make_settings(database_url=url)) as running:
            await add_staff(running)
            client = await log_in(running)
            jobs = running.app.state.jobs
            created = await client.post("/api/experts", json={"name": "刘律师", "role": "lawyer", "email": "liu@example.cn"})
            assert created.status_code == 201, created.text
            expert = created.json()["id"]
            dispute = (await client.post("/api/disputes", json={
                "title": "噪音纠纷", "dispute_type": "neighbour", "parties": [{"name": "张建军", "side": "applicant"}],
            })).json()["id"]
            assert (await _book(client, expert, dispute, 3)).status_code == 201

            # A restart: every pooled connection, the job store's too, is stale. The next booking
            # commits and answers 201 with its jobs stored (it answered 500 after committing).
            server.stop()
            server.start()
            booked = await _book(client, expert, dispute, 4)
            assert booked.status_code == 201, booked.text
            session = booked.json()
            assert jobs.scheduler.get_job(f"session-{session['id']}-open") is not None

            # An outage: health says so, requests answer 503 with a message, one line is logged.
            jobs.remove_session(session["id"])
            caplog.clear()
            with caplog.at_level(logging.INFO):
                server.stop()
                health = await client.get("/healthz")
                assert health.status_code == 503 and health.json()["reason"] == "database unreachable"
                refused = await _book(client, expert, dispute, 5)
                assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
                assert refused.json()["message"] == "系统数据库暂时无法连接，请稍后再试"
                listed = await client.get("/api/experts")
                assert listed.status_code == 503
                # The login check (a middleware, outside the routes' handlers) reads the database
                # too once its memory of the login runs out: 503 there as well, never 500.
                for path in ("/api/experts", "/disputes"):
                    running.app.state.live_logins.forget()
                    checked = await client.get(path)
                    assert checked.status_code == 503 and checked.headers["Retry-After"] == "5", (path, checked.text)
                # The monitoring server sees it (and /metrics still answers).
                found = samples((await client.get("/metrics")).text)
                assert value(found, "tiaojie_database_reachable") == 0
                assert value(found, "tiaojie_database_errors_total") >= 3 and "tiaojie_outbox_waiting" not in found
                # A booking that committed just before: its jobs cannot be stored now ...
                jobs.schedule_session(session["id"], dt.datetime.fromisoformat(session["start"]),
                                      dt.datetime.fromisoformat(session["end"]))
                assert (await client.get("/healthz")).status_code == 503
                server.start()
                assert (await client.get("/healthz")).status_code == 200
                assert value(samples((await client.get("/metrics")).text), "tiaojie_database_reachable") == 1
                # ... and the repair pass puts them back once the lease is renewed.
                await jobs.renew()
                assert jobs.scheduler.get_job(f"session-{session['id']}-open") is not None
            outage = [r for r in caplog.records if r.name == "foundation.outage"]
            assert [r.levelname for r in outage] == ["ERROR", "WARNING"], [r.getMessage() for r in outage]
            assert "answers again" in outage[1].getMessage()
            assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]
            assert (await _book(client, expert, dispute, 6)).status_code == 201
