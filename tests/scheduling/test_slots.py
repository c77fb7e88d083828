"""Collective slot search over in-memory intervals."""
from __future__ import annotations

import datetime as dt

from scheduling.panel import Panel, Seat, default_panel
from scheduling.slots import Candidate, Search, find_slots, to_minutes

UTC = dt.timezone.utc
SH = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 11, 23, 0, 0, tzinfo=SH)  # Monday 00:00 Shanghai


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=SH)


def span(day: int, start: int, end: int) -> tuple[int, int]:
    return to_minutes([(at(day, start), at(day, end))])[0]


def expert(expert_id: int, role: str, *free: tuple[int, int], **fields: object) -> Candidate:
    return Candidate(expert_id=expert_id, role=role, free=tuple(free), **fields)  # type: ignore[arg-type]


def search(panel: Panel | None = None, **fields: object) -> Search:
    values: dict[str, object] = dict(
        panel=panel or default_panel(), window_start=at(23, 0), window_end=at(30, 0), now=NOW,
        min_notice_min=0, gap_min=0,
    )
    values.update(fields)
    return Search(**values)  # type: ignore[arg-type]


def test_true_intersection_of_required_roles() -> None:
    pool = [
        expert(1, "legal_officer", span(23, 9, 12)),
        expert(2, "lawyer", span(23, 10, 13)),
        expert(3, "governance_specialist", span(23, 11, 15)),
    ]
    slots = find_slots(search(), pool)
    assert [s.start for s in slots] == [at(23, 11)]
    assert slots[0].end == at(23, 12)
    assert sorted(slots[0].expert_ids) == [1, 2, 3]


def test_no_slot_when_one_role_is_never_free_together() -> None:
    pool = [
        expert(1, "legal_officer", span(23, 9, 10)),
        expert(2, "lawyer", span(23, 10, 11)),
        expert(3, "governance_specialist", span(23, 9, 11)),
    ]
    assert find_slots(search(), pool) == []


def test_union_of_a_role_is_enough_but_not_the_union_of_all() -> None:
    # Two lawyers cover different hours; the slot needs one lawyer, so both hours count.
    pool = [
        expert(1, "legal_officer", span(23, 9, 17)),
        expert(2, "lawyer", span(23, 9, 10)),
        expert(3, "lawyer", span(23, 15, 16)),
        expert(4, "governance_specialist", span(23, 9, 17)),
    ]
    slots = find_slots(search(), pool)
    assert [(s.start, s.seats[1].expert_id) for s in slots] == [(at(23, 9), 2), (at(23, 15), 3)]


def test_count_two_needs_two_distinct_experts() -> None:
    panel = Panel(seats=[Seat(role="lawyer", count=2)])
    pool = [expert(1, "lawyer", span(23, 9, 12)), expert(2, "lawyer", span(23, 11, 14))]
    slots = find_slots(search(panel), pool)
    assert [s.start for s in slots] == [at(23, 11)]
    assert sorted(slots[0].expert_ids) == [1, 2]


def test_no_expert_in_two_seats_of_different_roles_and_pins() -> None:
    panel = Panel(seats=[Seat(role="lawyer", expert_id=7), Seat(role="lawyer")])
    pool = [expert(7, "lawyer", span(23, 9, 12)), expert(8, "lawyer", span(23, 10, 12))]
    slots = find_slots(search(panel), pool)
    assert [s.start for s in slots] == [at(23, 10), at(23, 10, 30), at(23, 11)]
    assert all(s.seats[0].expert_id == 7 and s.seats[1].expert_id == 8 for s in slots)


def test_pinned_expert_must_be_free() -> None:
    panel = Panel(seats=[Seat(role="legal_officer", expert_id=5), Seat(role="lawyer")])
    pool = [expert(5, "legal_officer", span(24, 14, 15)), expert(6, "lawyer", span(23, 9, 18), span(24, 9, 18))]
    slots = find_slots(search(panel), pool)
    assert [s.start for s in slots] == [at(24, 14)]


def test_optional_seat_filled_when_possible_and_never_blocks() -> None:
    panel = Panel(seats=[Seat(role="lawyer"), Seat(role="counsellor", optional=True)])
    pool = [expert(1, "lawyer", span(23, 9, 11)), expert(2, "counsellor", span(23, 10, 11))]
    slots = find_slots(search(panel), pool)
    assert [(s.start, s.seats[1].expert_id) for s in slots] == [(at(23, 9), None), (at(23, 9, 30), None), (at(23, 10), 2)]


def test_existing_sessions_and_buffers() -> None:
    panel = Panel(seats=[Seat(role="lawyer")])
    pool = [expert(1, "lawyer", span(23, 9, 13), busy=(span(23, 10, 11),))]
    no_buffer = find_slots(search(panel), pool)
    assert [s.start for s in no_buffer] == [at(23, 9), at(23, 11), at(23, 11, 30), at(23, 12)]
    with_buffer = find_slots(search(panel, gap_min=30), pool)
    # 30 minutes free before and after each of the expert's sessions.
    assert [s.start for s in with_buffer] == [at(23, 11, 30), at(23, 12)]


def test_minimum_notice_and_window() -> None:
    panel = Panel(seats=[Seat(role="lawyer")])
    pool = [expert(1, "lawyer", span(23, 9, 12), span(24, 9, 12))]
    late = find_slots(search(panel, now=at(23, 9, 10), min_notice_min=60), pool)
    assert late[0].start == at(23, 10, 30)
    windowed = find_slots(search(panel, window_start=at(24, 0), window_end=at(24, 10)), pool)
    assert [s.start for s in windowed] == [at(24, 9)]


def test_daily_and_weekly_caps() -> None:
    panel = Panel(seats=[Seat(role="lawyer")])
    busy = (span(23, 8, 9), span(23, 18, 19))
    pool = [expert(1, "lawyer", span(23, 9, 12), span(24, 9, 12), busy=busy, max_per_day=2, max_per_week=5)]
    assert find_slots(search(panel, limit=1), pool)[0].start == at(24, 9)
    weekly = [expert(1, "lawyer", span(23, 9, 12), span(30, 9, 12), busy=busy, max_per_day=5, max_per_week=2)]
    assert find_slots(search(panel, limit=1, window_end=at(30, 23)), weekly)[0].start == at(30, 9)


def test_a_capped_day_blocks_starts_on_it_not_sessions_running_into_it() -> None:
    # Two sessions on the 24th (its cap): sessions starting late on the 23rd and running past
    # midnight are allowed, as booking allows them (a session counts on the day it starts);
    # starts on the 24th are not.
    panel = Panel(seats=[Seat(role="lawyer")])
    evening = to_minutes([(at(23, 22), at(24, 2))])[0]
    pool = [expert(1, "lawyer", evening, busy=(span(24, 9, 10), span(24, 14, 15)), max_per_day=2, max_per_week=9)]
    found = find_slots(search(panel, duration_min=90, step_min=30, limit=10), pool)
    assert [s.start for s in found] == [at(23, 22), at(23, 22, 30), at(23, 23), at(23, 23, 30)]
