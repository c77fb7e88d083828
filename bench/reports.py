"""Benchmark of the office's reports: statistics over a date range and the weekly review.

Fills a real SQLite file with a year of history (disputes with two parties, sessions with a
panel of three and the two parties, outcomes, room joins, follow-ups, and an audit row per
dispute change), then times `statistics()` over the last month and the whole year, and
`review.build()` for the last full week. Prints the median of 5 runs at 2,000 and 20,000
disputes a year, and the ratio of the large run to the small one (10x the data).

    .venv/bin/python bench/reports.py
"""
from __future__ import annotations

import asyncio
import datetime as dt
import random
import statistics as stats
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert  # noqa: E402

from audit.models import AuditEntry  # noqa: E402
from disputes.models import Dispute, Party  # noqa: E402
from experts.models import Expert, Office  # noqa: E402
from foundation.database import create_engine, create_session_factory, read_only, upgrade_database  # noqa: E402
from outcomes import review  # noqa: E402
from outcomes.models import FollowUp, Outcome  # noqa: E402
from outcomes.statistics import statistics  # noqa: E402
from scheduling.models import MediationSession, Participant  # noqa: E402
from scheduling.room_record import RoomEvent  # noqa: E402

TYPES = ["neighbour", "family", "labour", "rental", "land", "animals", "property", "consumer", "traffic"]
RISKS = ["low", "medium", "high", "urgent"]
KINDS = ["agreement", "agreement", "agreement", "no_agreement", "referred", "adjourned"]
NOW = dt.datetime(2026, 11, 23, 4, tzinfo=dt.timezone.utc)
RUNS = 5
STATUS_AFTER = {"agreement": "resolved", "no_agreement": "failed", "referred": "referred", "adjourned": "scheduled"}


async def fill(url: str, disputes: int, seed: int = 3) -> None:
    """A year of history, inserted in bulk (no audit listener: that is not what is measured)."""
    rng = random.Random(seed)
    engine = create_engine(url)
    async with create_session_factory(engine)() as db, db.begin():
        await db.execute(insert(Office), [{"id": i, "name": f"警务室{i}", "timezone": "Asia/Shanghai"} for i in range(1, 9)])
        await db.execute(insert(Expert), [
            {"id": i, "name": f"专家{i}", "role": ["legal_officer", "lawyer", "governance_specialist"][i % 3],
             "email": f"e{i}@x.cn", "office_id": 1 + i % 8} for i in range(1, 201)])
        rows: dict[str, list[dict[str, Any]]] = {k: [] for k in ("d", "p", "s", "pt", "o", "e", "f", "a")}
        pid = ptid = 0
        for d in range(1, disputes + 1):
            created = NOW - dt.timedelta(minutes=rng.randint(0, 365 * 24 * 60))
            # Open if recent and not mediated yet; old unmediated ones were passed on elsewhere.
            status = "registered" if NOW - created < dt.timedelta(days=60) else "referred"
            rows["d"].append({"id": d, "title": f"纠纷{d}", "dispute_type": rng.choice(TYPES), "risk_level": rng.choice(RISKS),
                              "status": status, "office_id": 1 + d % 8, "created_at": created, "updated_at": created})
            for side in ("applicant", "respondent"):
                pid += 1
                rows["p"].append({"id": pid, "dispute_id": d, "name": f"当事人{pid % 5000}", "side": side,
                                  "phone": f"138{pid % 5000:08d}"})
            rows["a"].append({"at": created, "actor": "staff:1", "action": "update", "entity": "disputes", "entity_id": d,
                              "before": {"risk_level": "low"}, "after": {"risk_level": rng.choice(RISKS)}})
            if rng.random() < 0.6:
                start = created + dt.timedelta(days=rng.randint(1, 14))
                rows["s"].append({"id": d, "dispute_id": d, "start": start, "end": start + dt.timedelta(hours=1),
                                  "status": "ended" if start < NOW else "confirmed", "panel": {}, "created_at": created,
                                  "updated_at": created, "sequence": 0, "location_kind": "remote"})
                for kind, expert in (("expert", rng.randint(1, 200)), ("expert", rng.randint(1, 200)),
                                     ("expert", rng.randint(1, 200)), ("party", None), ("party", None)):
                    ptid += 1
                    rows["pt"].append({"id": ptid, "session_id": d, "kind": kind, "role": "lawyer" if expert else "party",
                                       "display_name": f"人{ptid}", "expert_id": expert, "status": "accepted",
                                       "link_version": 1, "created_at": created})
                    if rng.random() < 0.9:
                        rows["e"].append({"session_id": d, "participant_id": ptid, "kind": "join", "data": {}, "at": start})
                rows["d"][-1]["status"] = "scheduled"
                if start < NOW:
                    kind = rng.choice(KINDS)
                    rows["d"][-1]["status"] = STATUS_AFTER[kind]
                    rows["o"].append({"id": d, "session_id": d, "dispute_id": d, "kind": kind, "recorded_at": start + dt.timedelta(hours=1)})
                    if kind == "agreement":
                        for days in (7, 30):
                            rows["f"].append({"dispute_id": d, "outcome_id": d, "due_at": start + dt.timedelta(days=days),
                                              "status": rng.choice(["pending", "kept"])})
        for model, key in ((Dispute, "d"), (Party, "p"), (MediationSession, "s"), (Participant, "pt"), (Outcome, "o"),
                           (RoomEvent, "e"), (FollowUp, "f"), (AuditEntry, "a")):
            for i in range(0, len(rows[key]), 5000):
                await db.execute(insert(model), rows[key][i:i + 5000])
    await engine.dispose()


async def median_ms(work: Callable[[], Awaitable[Any]]) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        await work()
        times.append((time.perf_counter() - started) * 1000)
    return stats.median(times)


async def measure(disputes: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp())
    url = f"sqlite+aiosqlite:///{folder / 'bench.sqlite3'}"
    upgrade_database(url)
    await fill(url, disputes)
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    week = review.last_full_week(NOW, "Asia/Shanghai")

    async def month() -> Any:
        async with sessions() as db:
            await read_only(db)
            return await statistics(db, NOW - dt.timedelta(days=30), NOW)

    async def year() -> Any:
        async with sessions() as db:
            await read_only(db)
            return await statistics(db, NOW - dt.timedelta(days=365), NOW)

    async def weekly() -> Any:
        async with sessions() as db:
            return await review.build(db, week, "Asia/Shanghai", NOW)

    figures = {"statistics, last 30 days": await median_ms(month), "statistics, whole year": await median_ms(year),
               "weekly review": await median_ms(weekly)}
    await engine.dispose()
    return figures


async def main() -> None:
    small, large = 2_000, 20_000
    base = await measure(small)
    big = await measure(large)
    print(f"Reports on a real SQLite file; median of {RUNS} runs (ms)")
    print(f"{'':28}{small:>10,} {large:>10,}  ratio")
    for name in base:
        print(f"{name:28}{base[name]:>10.1f} {big[name]:>10.1f}  x{big[name] / base[name]:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
