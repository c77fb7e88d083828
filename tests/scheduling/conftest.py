"""Fixtures for booking tests: a dispute with two parties and a small expert pool."""
from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from tests.conftest import ExpertFactory

SH = dt.timezone(dt.timedelta(hours=8))
ALL_WEEK = {"windows": [{"weekday": d, "start": "08:00", "end": "20:00"} for d in range(7)]}


def next_monday(hour: int, minute: int = 0, weeks: int = 1) -> dt.datetime:
    """A Monday at hour:minute Shanghai time, `weeks` Mondays from now (the first at least two
    days ahead, so that a session on it still has its day-before reminder to come: on a Sunday
    the coming Monday's had passed, and a test of that reminder failed)."""
    today = dt.datetime.now(SH).date()
    ahead = 7 * weeks - today.weekday()
    monday = today + dt.timedelta(days=ahead if ahead >= 2 else ahead + 7)
    return dt.datetime.combine(monday, dt.time(hour, minute), SH)


@pytest.fixture
async def pool(staff_client: httpx.AsyncClient, make_expert: ExpertFactory) -> dict[str, Any]:
    """Two experts in each of the Yiyang three roles, free 08:00-20:00 every day, and a dispute."""
    experts: dict[str, list[dict[str, Any]]] = {}
    for role in ("legal_officer", "lawyer", "governance_specialist"):
        for n in range(2):
            expert = await make_expert(role=role, priority=10 + n, max_sessions_per_day=5, max_sessions_per_week=10)
            response = await staff_client.put(f"/api/experts/{expert['id']}/availability", json=ALL_WEEK)
            assert response.status_code == 200
            experts.setdefault(role, []).append(expert)
    dispute = (await staff_client.post("/api/disputes", json={
        "title": "宠物狗纠纷", "dispute_type": "animals", "risk_level": "high",
        "parties": [{"name": "张建军", "side": "applicant", "email": "zhang@example.cn"},
                    {"name": "李秀兰", "side": "respondent", "email": "li@example.cn"}],
    })).json()
    return {"experts": experts, "dispute": dispute}


def booking(pool: dict[str, Any], start: dt.datetime, minutes: int = 60, **extra: Any) -> dict[str, Any]:
    """A booking body for the first expert of each role."""
    return {
        "dispute_id": pool["dispute"]["id"], "start": start.isoformat(),
        "end": (start + dt.timedelta(minutes=minutes)).isoformat(),
        "experts": [{"expert_id": pool["experts"][role][0]["id"]} for role in ("legal_officer", "lawyer", "governance_specialist")],
        **extra,
    }
