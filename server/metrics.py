"""/metrics: what a sysadmin's Prometheus scrapes from each node.

Read at scrape time from the parts that know it: the media hub (rooms, participants, forwarded
streams, each media worker's CPU, the loss and estimate of every subscriber's downlink), the
outbox (what waits to be sent), the scheduler (how late jobs start) and the database outage
tracker (errors, and whether the database answers now). Only the addresses in
TIAOJIE_METRICS_ALLOW, or a scraper with TIAOJIE_METRICS_TOKEN, may read it.
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from foundation.config import Settings
from foundation.errors import Forbidden
from scheduling import outbox
from server import backups

LOSS_BUCKETS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
ESTIMATE_BUCKETS_BPS = (100_000, 200_000, 300_000, 500_000, 1_000_000, 2_000_000, 5_000_000)
LATENESS_BUCKETS_S = (0.1, 0.5, 1, 5, 30, 60, 300, 3600)
BACKLOG_TIMEOUT_S = 5.0  # a read of the outbox gives up after this
FRESH_WAIT_S = 0.05  # a scrape waits this long for a fresh read, else answers with the last one
logger = logging.getLogger(__name__)


class Metrics:
    """One app's registry: the process's own figures, job lateness as jobs start, and the rest
    read at each scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.job_lateness = Histogram(
            "tiaojie_job_lateness_seconds", "How long after it was due each scheduled job started.",
            buckets=LATENESS_BUCKETS_S, registry=self.registry)
        self.joins = Counter(
            "tiaojie_room_joins", "Joins to a room through this node, by what came of them: joined, rejoined "
            "(admitted before), moved (sent to the room's node), refused (by reason).", ["outcome", "reason"],
            registry=self.registry)
        self.requests = Counter("tiaojie_http_requests", "HTTP requests answered, by route and status class (2xx ... 5xx).",
                                ["route", "status"], registry=self.registry)
        self._scrape = _Scrape()
        self.registry.register(self._scrape)
        self._backlog: dict[str, Any] | None = None  # the outbox as last read: a scrape never waits on the database
        self._reading: asyncio.Task[None] | None = None

    def job_started_late(self, seconds: float) -> None:
        self.job_lateness.observe(max(0.0, seconds))

    def joined(self, outcome: str, reason: str = "") -> None:
        self.joins.labels(outcome, reason).inc()

    def answered(self, route: str, status: int) -> None:
        self.requests.labels(route, f"{status // 100}xx").inc()

    async def _read_backlog(self, state: Any) -> None:
        try:
            async with asyncio.timeout(BACKLOG_TIMEOUT_S), state.db_sessions() as db:
                self._backlog = await outbox.backlog(db)
        except Exception as exc:  # the database out of reach or too slow: no outbox figures rather than old ones
            self._backlog = None
            if not isinstance(exc, TimeoutError) and not state.outage.failed(exc, "reading the outbox for /metrics"):
                logger.exception("reading the outbox for /metrics failed")

    async def render(self, state: Any) -> bytes:
        """The text format, from memory: the outbox as last read (a new read starts in the
        background, so that a scrape answers at once whatever the database does)."""
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._read_backlog(state), name="metrics-outbox")
            with contextlib.suppress(TimeoutError):  # a quick answer is used at once
                await asyncio.wait_for(asyncio.shield(self._reading), FRESH_WAIT_S)
        cluster = getattr(state, "cluster", None)
        self._scrape.figures = {"media": await state.media.stats(), "outbox": self._backlog, "outage": state.outage,
                                "fences": cluster.fences if cluster is not None else 0,
                                "backup_age_s": backups.age_s(state.settings)}
        try:
            return generate_latest(self.registry)
        finally:
            self._scrape.figures = {}


class _Scrape(Collector):
    """The figures read for one scrape, as metric families."""

    def __init__(self) -> None:
        self.figures: dict[str, Any] = {}

    def collect(self) -> Iterator[Metric]:
        if not self.figures:
            return
        media, backlog, outage = self.figures["media"], self.figures["outbox"], self.figures["outage"]
        yield _gauge("tiaojie_rooms", "Rooms live on this node.", media["rooms"])
        yield _gauge("tiaojie_participants", "People connected to rooms on this node.", media["peers"])
        yield _gauge("tiaojie_forwarded_streams", "Streams forwarded: each publisher's audio or video to each subscriber.",
                     media["streams"])
        packets = CounterMetricFamily("tiaojie_forwarded_packets", "RTP packets forwarded by the rooms live now.")
        packets.add_metric([], media["forwarded_packets"])
        yield packets
        workers = CounterMetricFamily("tiaojie_media_worker_cpu_seconds", "CPU time of each media worker process.",
                                      labels=["worker"])
        for index, worker in enumerate(media.get("per_worker", [])):
            workers.add_metric([str(index)], worker["cpu_s"])
        yield workers
        # Each media process's event loop (the web process's where media runs in it): how late
        # its timer fired at worst since the last scrape, and how often it was later than 60 ms
        # (then nobody's link is judged weak: signaling/media/lateness.py).
        processes = media.get("per_worker") or [media]
        lag = GaugeMetricFamily("tiaojie_media_loop_lag_ms", "The worst lateness of a media event loop since the "
                                "last scrape (ms).", labels=["worker"])
        late = CounterMetricFamily("tiaojie_media_loop_late", "Times a media event loop ran more than 60 ms late.",
                                   labels=["worker"])
        # ... and whether it cannot keep up and sheds video (signaling/media/overload.py).
        overloaded = GaugeMetricFamily("tiaojie_media_overloaded", "1 while a media process cannot keep up and sheds "
                                       "video (large layers of the least watched cameras first).", labels=["worker"])
        shed = GaugeMetricFamily("tiaojie_media_shed_videos", "Cameras a media process holds to their small layer "
                                 "because it cannot keep up.", labels=["worker"])
        episodes = CounterMetricFamily("tiaojie_media_overload_episodes", "Times a media process became overloaded.",
                                       labels=["worker"])
        for index, process in enumerate(processes):
            lag.add_metric([str(index)], process.get("loop_lag_ms", 0.0))
            late.add_metric([str(index)], process.get("loop_late_total", 0))
            overloaded.add_metric([str(index)], process.get("overloaded", 0))
            shed.add_metric([str(index)], process.get("shed_videos", 0))
            episodes.add_metric([str(index)], process.get("overload_episodes", 0))
        yield from (lag, late, overloaded, shed, episodes)
        yield _histogram("tiaojie_link_loss_ratio", "The share of packets lost on each subscriber's downlink, "
                         "by its latest receiver report.", media["link_loss"], LOSS_BUCKETS)
        yield _histogram("tiaojie_link_estimate_bps", "The bandwidth estimate of each subscriber's downlink that has one.",
                         media["link_estimate_bps"], ESTIMATE_BUCKETS_BPS)
        if backlog is not None:
            yield _gauge("tiaojie_outbox_waiting", "E-mails and SMS waiting to be sent.", backlog["waiting"])
            yield _gauge("tiaojie_outbox_failed", "E-mails and SMS that failed and wait for staff to retry them.",
                         backlog["failed"])
            yield _gauge("tiaojie_outbox_oldest_waiting_seconds", "Age of the oldest message waiting to be sent.",
                         backlog["oldest_waiting_s"])
        errors = CounterMetricFamily("tiaojie_database_errors", "Failures to reach the database (requests, jobs, heartbeats).")
        errors.add_metric([], outage.failures)
        yield errors
        yield _gauge("tiaojie_database_reachable", "1 while the database answers, 0 during an outage.",
                     0 if outage.since is not None else 1)
        fences = CounterMetricFamily("tiaojie_fence_events", "Times this node stopped hosting rooms because it could not "
                                     "write its cluster heartbeat in time.")
        fences.add_metric([], self.figures["fences"])
        yield fences
        if self.figures["backup_age_s"] is not None:
            yield _gauge("tiaojie_backup_age_seconds", "Age of the newest archive in TIAOJIE_BACKUP_DIR.",
                         self.figures["backup_age_s"])


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _histogram(name: str, documentation: str, values: Sequence[float], bounds: Iterable[float]) -> GaugeHistogramMetricFamily:
    """The values of now (one per link) as a gauge histogram: cumulative counts per bucket."""
    buckets = [(repr(float(bound)), sum(1 for v in values if v <= bound)) for bound in bounds]
    return GaugeHistogramMetricFamily(name, documentation, buckets=[*buckets, ("+Inf", len(values))],
                                      gsum_value=sum(values))


def allowed(request: Request, settings: Settings) -> bool:
    """The scraper sends the token, or comes from an allowed address (behind a trusted proxy,
    the address it forwarded for, which is why deploy/nginx.conf does not pass /metrics on)."""
    header = request.headers.get("authorization", "")
    if settings.metrics_token and hmac.compare_digest(header.encode(), f"Bearer {settings.metrics_token}".encode()):
        return True
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network, strict=False) for network in settings.metrics_allow)


async def metrics(request: Request) -> Response:
    """Prometheus text format for this node."""
    if not allowed(request, request.app.state.settings):
        raise Forbidden("metrics are for the monitoring server: an allowed address or the metrics token")
    body = await request.app.state.metrics.render(request.app.state)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class CountRequests:
    """Counts every HTTP response by route and status class (`tiaojie_http_requests`); a
    response that never started (the app raised) counts as a 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            metrics: Metrics | None = getattr(scope["app"].state, "metrics", None) if "app" in scope else None
            if metrics is not None:
                metrics.answered(getattr(route, "path", "(no route)"), status)


routes = [Route("/metrics", metrics)]
