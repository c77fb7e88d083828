"""One set of booking rules: every slot the search offers can be booked, also when the clerk takes
up to 10 minutes to choose (a property test over random experts, time zones, windows, existing
sessions, caps and times of day), on a real SQLite file through the real search and booking
functions."""
from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import hypothesis
import pytest
from hypothesis import HealthCheck
from hypothesis import strategies as st

from disputes.models import Dispute
from experts.models import Expert, WeeklyWindow
from foundation.database import create_engine, create_session_factory, upgrade_database
from scheduling import bookings
from scheduling.models import MediationSession, Participant
from scheduling.rules import Rules, availability_days, cap_day, deciding_span, expert_problem
from scheduling.schemas import BookingIn, SearchIn

ZONES = ["Asia/Shanghai", "UTC", "America/New_York", "Europe/Berlin", "Pacific/Kiritimati", "Pacific/Pago_Pago"]
ROLES = ["legal_officer", "lawyer"]
BASE = dt.datetime(2026, 12, 7, tzinfo=dt.timezone.utc)  # a Monday

window = st.tuples(st.integers(0, 6), st.integers(0, 47), st.integers(2, 20))  # weekday, half-hour, length in half-hours
expert = st.fixed_dictionaries({
    "role": st.sampled_from(ROLES), "zone": st.sampled_from(ZONES),
    "windows": st.lists(window, min_size=1, max_size=4),
    "per_day": st.integers(1, 3), "per_week": st.integers(1, 5),
    "sessions": st.lists(st.tuples(st.integers(0, 13 * 48), st.sampled_from([2, 3])), max_size=4),  # half-hour, length
})
scenario = st.fixed_dictionaries({
    "experts": st.lists(expert, min_size=2, max_size=5),
    "now_min": st.integers(0, 7 * 1440 - 1),
    "duration": st.sampled_from([30, 60, 90]),
    "step": st.sampled_from([15, 30]),
    "gap": st.sampled_from([0, 15, 30]),
    "notice": st.sampled_from([0, 120]),
    # The search runs at any second; the clerk books what it offered up to 10 minutes later.
    "now_s": st.integers(0, 59),
    "decide_s": st.integers(0, 600),
})


def _time(half_hours: int) -> dt.time:
    return dt.time(half_hours // 2 % 24, 30 * (half_hours % 2))


async def _run(url: str, case: dict) -> None:
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    now = BASE + dt.timedelta(minutes=case["now_min"], seconds=case.get("now_s", 0))
    booked_at = now + dt.timedelta(seconds=case.get("decide_s", 0))
    rules = Rules(gap_min=case["gap"], notice_min=case["notice"], horizon_days=30)
    try:
        async with sessions() as db:
            await db.begin()
            dispute = Dispute(title="性质测试", dispute_type="neighbour")
            db.add(dispute)
            for n, spec in enumerate(case["experts"]):
                person = Expert(name=f"专家{n}", role=spec["role"], email=f"p{n}@e.cn", timezone=spec["zone"],
                                max_sessions_per_day=spec["per_day"], max_sessions_per_week=spec["per_week"])
                person.windows = [
                    WeeklyWindow(weekday=d, start=_time(s), end=_time(s + length)) for d, s, length in spec["windows"]
                ]
                db.add(person)
                await db.flush()
                for at, length in spec["sessions"]:
                    start = BASE + dt.timedelta(minutes=30 * at)
                    held = MediationSession(dispute_id=dispute.id, start=start, end=start + dt.timedelta(minutes=30 * length))
                    held.participants = [Participant(kind="expert", role=person.role, display_name=person.name,
                                                     expert_id=person.id, status="accepted")]
                    db.add(held)
            await db.flush()
            dispute_id = dispute.id
            db.expunge_all()  # search and booking load what they need, as in a request
            panel = {"seats": [{"role": role} for role in ROLES]}
            found = await bookings.search_slots(
                db, SearchIn(panel=panel, duration_min=case["duration"], step_min=case["step"], limit=8), now, rules)
            for slot in found:
                body = BookingIn(dispute_id=dispute_id, start=slot["start"], end=slot["end"],
                                 experts=[{"expert_id": seat["expert"]["id"]} for seat in slot["seats"]])
                savepoint = await db.begin_nested()
                try:
                    await bookings.book(db, body, rules, staff_id=None, office_id=None, host_name="值班民警", now=booked_at)
                except Exception as exc:  # noqa: BLE001 - the property: nothing offered is refused
                    raise AssertionError(f"offered {slot['start']} but booking refused it: {exc}") from exc
                finally:
                    await savepoint.rollback()
                    db.expunge_all()  # rolled-back objects are stale: load afresh
            await db.rollback()
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{Path(tmp_path_factory.mktemp('rules')) / 'rules.sqlite3'}"
    upgrade_database(url)
    return url


@hypothesis.settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@hypothesis.given(case=scenario)
def test_every_slot_the_search_offers_can_be_booked(database: str, case: dict) -> None:
    asyncio.run(_run(database, case))


def test_the_search_offers_something_in_the_common_case(database: str) -> None:
    """The property above is not vacuous: with wide windows there are slots, and they book."""
    case = {"experts": [{"role": r, "zone": "Asia/Shanghai", "windows": [(d, 16, 20) for d in range(7)],
                         "per_day": 3, "per_week": 5, "sessions": []} for r in ROLES],
            "now_min": 0, "duration": 60, "step": 30, "gap": 15, "notice": 120}
    found: list[object] = []

    async def count() -> None:
        original = bookings.search_slots

        async def spy(*args: object, **kwargs: object) -> list[dict]:
            result = await original(*args, **kwargs)  # type: ignore[arg-type]
            found.extend(result)
            return result

        bookings.search_slots = spy  # type: ignore[assignment]
        try:
            await _run(database, case)
        finally:
            bookings.search_slots = original  # type: ignore[assignment]

    asyncio.run(count())
    assert len(found) == 8


def test_early_morning_in_beijing_is_that_local_day() -> None:
    # 07:00 Beijing on Tuesday is 23:00 UTC on Monday: the availability day is Tuesday's (and
    # Monday's, for windows running past midnight), and the cap day is Beijing's Tuesday.
    start = dt.datetime(2026, 12, 7, 23, 0, tzinfo=dt.timezone.utc)
    assert availability_days(start, start + dt.timedelta(hours=1), "Asia/Shanghai") == (dt.date(2026, 12, 7), dt.date(2026, 12, 8))
    assert cap_day(start, "Asia/Shanghai")[0] == dt.datetime(2026, 12, 7, 16, 0, tzinfo=dt.timezone.utc)


def test_a_slot_offered_just_before_the_notice_passes_it_still_books(database: str) -> None:
    # The search at 08:59:50 Beijing time (notice 120 minutes) offers 11:00 first; the clerk
    # chooses it a minute later, when 11:00 is less than 120 minutes away.
    case = {"experts": [{"role": r, "zone": "Asia/Shanghai", "windows": [(d, 0, 47) for d in range(7)],
                         "per_day": 3, "per_week": 5, "sessions": []} for r in ROLES],
            "now_min": 59, "now_s": 50, "decide_s": 60, "duration": 60, "step": 30, "gap": 0, "notice": 120}
    asyncio.run(_run(database, case))


@hypothesis.settings(max_examples=300, deadline=None, database=None)
@hypothesis.given(
    sessions=st.lists(st.tuples(st.integers(-20 * 48, 20 * 48), st.integers(1, 6)), max_size=12),
    at=st.integers(0, 7 * 48), length=st.integers(1, 4), gap=st.sampled_from([0, 15, 30]),
    zone=st.sampled_from(ZONES), per_day=st.integers(1, 3), per_week=st.integers(1, 5), check=st.booleans(),
)
def test_booking_reads_only_the_sessions_that_decide(
    sessions: list[tuple[int, int]], at: int, length: int, gap: int, zone: str, per_day: int, per_week: int,
    check: bool,
) -> None:
    """A booking loads an expert's sessions over `deciding_span` only: the answer is the one that
    every session of theirs, however far away, would give."""
    rules = Rules(gap_min=gap, timezone=zone)
    person = Expert(name="专家", role="lawyer", timezone=zone, active=True, max_sessions_per_day=per_day,
                    max_sessions_per_week=per_week, windows=[WeeklyWindow(weekday=d, start=dt.time(0), end=dt.time(23, 30))
                                                             for d in range(7)])
    busy = [(BASE + dt.timedelta(minutes=30 * s), BASE + dt.timedelta(minutes=30 * (s + n))) for s, n in sessions]
    start = BASE + dt.timedelta(minutes=30 * at)
    end = start + dt.timedelta(minutes=30 * length)
    first, last = deciding_span(start, end, rules, check_caps=check)
    read = [(s, e) for s, e in busy if e > first and s < last]  # what `busy_times` selects
    assert expert_problem(person, read, start, end, rules, check_availability=check) == \
        expert_problem(person, busy, start, end, rules, check_availability=check)
