"""/metrics: a node's figures in the Prometheus text format, for the monitoring server only."""
from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from foundation.config import Settings
from foundation.database import utcnow
from tests.conftest import Live
from tests.signaling.test_ws import admit, host_and_party, media_flows


@pytest.fixture
def settings(make_settings: object) -> Settings:
    assert callable(make_settings)
    return make_settings(media_workers=2, metrics_token="scrape-secret")


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Each sample name's (labels, value) pairs, parsed as Prometheus parses them."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def value(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return next(v for have, v in found[name] if all(have.get(k) == want for k, want in labels.items()))


async def scrape(live: Live) -> dict[str, list[tuple[dict[str, str], float]]]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{live.base}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return samples(response.text)


async def test_a_live_room_shows_in_the_metrics(live: Live) -> None:
    clients = await host_and_party(live)
    host, party = clients
    try:
        await admit(host, party)
        await media_flows(clients)
        found = await scrape(live)
        assert value(found, "tiaojie_rooms") == 1
        assert value(found, "tiaojie_participants") == 2
        assert value(found, "tiaojie_forwarded_streams") == 4  # each one's audio and video to the other
        assert value(found, "tiaojie_forwarded_packets_total") > 0
        cpu = {labels["worker"]: v for labels, v in found["tiaojie_media_worker_cpu_seconds_total"]}
        assert set(cpu) == {"0", "1"} and max(cpu.values()) > 0
        # Each worker's event loop: how late it ran (a working loop is a little late, never negative).
        lag = {labels["worker"]: v for labels, v in found["tiaojie_media_loop_lag_ms"]}
        assert set(lag) == {"0", "1"} and all(v >= 0 for v in lag.values())
        assert {labels["worker"] for labels, _ in found["tiaojie_media_loop_late_total"]} == {"0", "1"}
        # Two subscribers' downlinks, each in the loss histogram once their receivers report.
        deadline = asyncio.get_running_loop().time() + 10
        while value(found, "tiaojie_link_loss_ratio_gcount") != 2:
            assert asyncio.get_running_loop().time() < deadline
            found = await scrape(live)
        assert value(found, "tiaojie_link_loss_ratio_bucket", le="+Inf") == 2
        assert value(found, "tiaojie_database_reachable") == 1
        assert value(found, "tiaojie_database_errors_total") == 0
        assert value(found, "process_cpu_seconds_total") > 0
        # The booking's invitations were handled (no mail server: recorded), none waits.
        assert value(found, "tiaojie_outbox_waiting") == 0
        assert value(found, "tiaojie_job_lateness_seconds_count") == 0
    finally:
        for client in clients:
            await client.close()
    # Everyone gone: the room's figures fall back.
    deadline = asyncio.get_running_loop().time() + 10
    while value(found := await scrape(live), "tiaojie_participants") != 0:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.1)
    assert value(found, "tiaojie_forwarded_streams") == 0


async def nothing(db: object) -> None:
    """A scheduled job that does nothing."""


async def test_how_late_jobs_start_is_measured(live: Live) -> None:
    # A job due two seconds ago (as after a restart) starts late by at least that.
    live.app.state.jobs.once("late-job", nothing, utcnow() - dt.timedelta(seconds=2), (), 3600)
    deadline = asyncio.get_running_loop().time() + 10
    while value(found := await scrape(live), "tiaojie_job_lateness_seconds_count") != 1:
        assert asyncio.get_running_loop().time() < deadline, "the job did not run"
        await asyncio.sleep(0.1)
    assert value(found, "tiaojie_job_lateness_seconds_bucket", le="1.0") == 0
    assert value(found, "tiaojie_job_lateness_seconds_bucket", le="30.0") == 1
    assert value(found, "tiaojie_job_lateness_seconds_sum") >= 2


async def test_only_allowed_addresses_or_the_token_read_the_metrics(live: Live) -> None:
    transport = httpx.ASGITransport(app=live.app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as outsider:
        refused = await outsider.get("/metrics")
        assert refused.status_code == 403
        assert "监控" in refused.json()["message"]
        assert (await outsider.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 403
        with_token = await outsider.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert with_token.status_code == 200 and "tiaojie_rooms" in with_token.text


async def test_joins_refusals_and_http_answers_are_counted(live: Live) -> None:
    from tests.signaling.test_ws import join

    host = await join(live, 0, live.token("host"))
    forged = await join(live, 1, live.token("party")[:-4] + "AAAA")
    try:
        assert forged.errors
        assert (await live.staff.get("/api/disputes/999999")).status_code == 404
        found = await scrape(live)
        assert value(found, "tiaojie_room_joins_total", outcome="joined") == 1
        assert value(found, "tiaojie_room_joins_total", outcome="refused", reason="invite_401") == 1
        assert value(found, "tiaojie_http_requests_total", route="/api/disputes/{id}", status="4xx") >= 1
        assert value(found, "tiaojie_http_requests_total", route="/api/sessions", status="2xx") >= 1  # the fixture's booking
        assert value(found, "tiaojie_fence_events_total") == 0
    finally:
        await host.close()
        await forged.close()
