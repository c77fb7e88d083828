"""Benchmark of the collective slot search.

Builds N experts x 4 weeks of weekly availability (with date overrides) and existing bookings,
then times `find_slots` for the default panel plus a pinned and an optional seat. Prints the
median time per search at 100, 1,000 and 5,000 experts, and the ratio to the 100-expert run.

    .venv/bin/python bench/slot_search.py
"""
from __future__ import annotations

import datetime as dt
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experts.availability import Override, Window, expand  # noqa: E402
from scheduling.panel import Panel, Seat  # noqa: E402
from scheduling.slots import Candidate, Search, find_slots, to_minutes  # noqa: E402

ROLES = ["legal_officer", "lawyer", "retired_cadre", "governance_specialist", "counsellor", "mediator"]
TYPES = ["neighbour", "family", "labour", "rental", "land", "animals", "property"]
DIALECTS = ["普通话", "益阳话", "粤语", "湘语"]
FIRST_DAY = dt.date(2026, 11, 23)
SH = dt.timezone(dt.timedelta(hours=8))
LATE_ID = 10**6  # an extra legal officer, free only in the last week
# The figures before the cap calendar's cache, measured with that code on this machine just before
# the change (2026-12-05, medians per search), printed beside this run's.
PREVIOUS_MS = {100: "2.39", 1000: "20.40", 5000: "110.67"}


def build_pool(n: int, seed: int = 7) -> list[Candidate]:
    """n experts with 2-3 windows on 3-5 weekdays, a day off, and 0-6 existing bookings."""
    rng = random.Random(seed)
    pool = []
    for i in range(n):
        windows = []
        for day in rng.sample(range(7), rng.randint(3, 5)):
            for start_hour in rng.sample([8, 9, 13, 14, 19], rng.randint(1, 3)):
                windows.append(Window(day, dt.time(start_hour), dt.time(start_hour + rng.choice([2, 3, 4]))))
        overrides = [Override(FIRST_DAY + dt.timedelta(days=rng.randint(0, 27)))]
        free = expand(windows, overrides, "Asia/Shanghai", FIRST_DAY, FIRST_DAY + dt.timedelta(days=27))
        busy = []
        for _ in range(rng.randint(0, 6)):
            start, end = rng.choice(free)
            busy.append((start, min(end, start + dt.timedelta(hours=1))))
        pool.append(Candidate(
            expert_id=i + 1, role=ROLES[i % len(ROLES)], free=to_minutes(free), busy=to_minutes(sorted(busy)),
            priority=rng.choice([10, 50, 100]), specialties=frozenset(rng.sample(TYPES, 2)),
            languages=frozenset(rng.sample(DIALECTS, 2)), last_booked=rng.randint(0, 10**6),
            max_per_day=2, max_per_week=3,
        ))
    return pool


def make_search(late: bool = False) -> Search:
    """The search; `late` pins an expert free only in the last week, so all 4 weeks are scanned."""
    panel = Panel(seats=[
        Seat(role="legal_officer", expert_id=LATE_ID if late else 1),
        Seat(role="lawyer", count=2, specialty="neighbour", dialect="益阳话"),
        Seat(role="governance_specialist", specialty="neighbour"),
        Seat(role="counsellor", optional=True),
    ])
    now = dt.datetime.combine(FIRST_DAY, dt.time(8), SH)
    return Search(
        panel=panel, window_start=now, window_end=now + dt.timedelta(days=28), now=now,
        duration_min=60, step_min=15, gap_min=15, min_notice_min=120,
        party_busy=to_minutes([(now + dt.timedelta(days=d, hours=1), now + dt.timedelta(days=d, hours=3)) for d in range(28)]),
        limit=10,
    )


def median_ms(pool: list[Candidate], search: Search, runs: int) -> tuple[float, int]:
    times = []
    found = 0
    for _ in range(runs):
        started = time.perf_counter()
        found = len(find_slots(search, pool))
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), found


def main() -> None:
    search, late = make_search(), make_search(late=True)
    print("slot search: pinned legal officer + 2 lawyers + governance specialist + optional counsellor,")
    print("60 min, 15 min grid, 4-week window, 10 slots wanted")
    baseline = None
    for n in (100, 1000, 5000):
        pool = build_pool(n)
        windows = sum(len(c.free) for c in pool)
        runs = 31 if n <= 1000 else 11
        ms, found = median_ms(pool, search, runs)
        last_week = dt.datetime.combine(FIRST_DAY + dt.timedelta(days=21), dt.time(9), SH)
        pool.append(Candidate(expert_id=LATE_ID, role="legal_officer", free=to_minutes(
            [(last_week + dt.timedelta(days=d), last_week + dt.timedelta(days=d, hours=8)) for d in range(7)])))
        late_ms, late_found = median_ms(pool, late, runs)
        baseline = baseline or ms
        print(f"{n:>5} experts ({windows:>6} free intervals): median {ms:7.2f} ms per search "
              f"(previously {PREVIOUS_MS[n]} ms; {found} slots, x{ms / baseline:5.1f} the 100-expert time); "
              f"slots only in week 4: {late_ms:7.2f} ms ({late_found} slots)")
    print("target: at most 10 ms at 1,000 experts")


if __name__ == "__main__":
    main()
