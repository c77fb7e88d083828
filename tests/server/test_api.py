"""JSON API round trips and bad input, through the real app on a real SQLite file."""
from __future__ import annotations

import httpx

from tests.conftest import ExpertFactory, Running


async def test_healthz_and_openapi(running: Running) -> None:
    client = running.client()
    assert (await client.get("/healthz")).json()["status"] == "ok"
    schema = (await client.get("/api/openapi.json")).json()
    assert schema["openapi"].startswith("3.")
    assert "post" in schema["paths"]["/api/disputes"]
    assert "ExpertIn" in schema["components"]["schemas"]
    assert "DisputeIn" in schema["components"]["schemas"]
    for index in ("/api", "/api/"):
        answer = await client.get(index)
        assert answer.status_code == 200 and answer.json()["openapi"] == "/api/openapi.json"


async def test_expert_round_trip(staff_client: httpx.AsyncClient) -> None:
    created = (await staff_client.post("/api/experts", json={
        "name": "王律师", "role": "lawyer", "email": "Wang@Example.cn", "organisation": "金洲律所",
        "specialties": ["neighbour", "rental"], "languages": ["普通话", "益阳话"], "max_sessions_per_week": 4,
    })).json()
    assert created["email"] == "wang@example.cn" and created["active"] is True
    fetched = (await staff_client.get(f"/api/experts/{created['id']}")).json()
    assert fetched == created
    patched = await staff_client.patch(f"/api/experts/{created['id']}", json={"active": False, "priority": 5})
    assert patched.json()["active"] is False and patched.json()["priority"] == 5
    listed = (await staff_client.get("/api/experts?role=lawyer&active=false")).json()
    assert [e["id"] for e in listed] == [created["id"]]
    assert (await staff_client.get("/api/experts?role=counsellor")).json() == []


async def test_availability_round_trip_and_expansion(staff_client: httpx.AsyncClient, make_expert: ExpertFactory) -> None:
    expert = await make_expert()
    body = {
        "windows": [{"weekday": 0, "start": "09:00", "end": "12:00"}, {"weekday": 0, "start": "22:00", "end": "01:00"}],
        "overrides": [{"date": "2026-11-30", "note": "请假"}],
    }
    saved = await staff_client.put(f"/api/experts/{expert['id']}/availability", json=body)
    assert saved.status_code == 200, saved.text
    assert saved.json()["windows"][1] == {"weekday": 0, "start": "22:00", "end": "01:00"}
    free = (await staff_client.get(f"/api/experts/{expert['id']}/free?from=2026-11-23&to=2026-12-06")).json()
    # Monday 23rd only: the 30th is a day off. 09:00 Shanghai is 01:00 UTC.
    assert free == [
        {"start": "2026-11-23T01:00:00+00:00", "end": "2026-11-23T04:00:00+00:00"},
        {"start": "2026-11-23T14:00:00+00:00", "end": "2026-11-23T17:00:00+00:00"},
    ]


async def test_dispute_round_trip_and_status_moves(staff_client: httpx.AsyncClient) -> None:
    created = await staff_client.post("/api/disputes", json={
        "title": "宠物狗纠纷", "dispute_type": "animals", "risk_level": "high",
        "cause": "狗咬人", "occurred_at": "2026-11-20T08:00:00+08:00", "place": "金山社区",
        "nature": "邻里纠纷", "scale": 4, "people_involved": "两户邻居", "development": "发生推搡",
        "parties": [{"name": "张三", "side": "applicant", "phone": "13807370000"}, {"name": "李四", "side": "respondent"}],
    })
    assert created.status_code == 201, created.text
    dispute = created.json()
    assert dispute["status"] == "registered"
    assert dispute["occurred_at"] == "2026-11-20T00:00:00+00:00"
    assert [p["side"] for p in dispute["parties"]] == ["applicant", "respondent"]

    illegal = await staff_client.post(f"/api/disputes/{dispute['id']}/status", json={"status": "resolved"})
    assert illegal.status_code == 409 and "registered" in illegal.json()["error"]
    moved = await staff_client.post(f"/api/disputes/{dispute['id']}/status", json={"status": "scheduled"})
    assert moved.json()["status"] == "scheduled"

    edited = await staff_client.patch(f"/api/disputes/{dispute['id']}", json={"risk_level": "urgent"})
    assert edited.json()["risk_level"] == "urgent"
    party = await staff_client.post(f"/api/disputes/{dispute['id']}/parties", json={"name": "王五", "side": "respondent"})
    assert party.status_code == 201
    again = (await staff_client.get(f"/api/disputes/{dispute['id']}")).json()
    assert len(again["parties"]) == 3 and again["risk_level"] == "urgent"
    assert [d["id"] for d in (await staff_client.get("/api/disputes?risk_level=urgent")).json()] == [dispute["id"]]


async def test_bad_input_names_the_field(staff_client: httpx.AsyncClient, make_expert: ExpertFactory) -> None:
    cases = [
        ("post", "/api/experts", {"name": "x", "role": "wizard", "email": "a@b.cn"}, 422, "role"),
        ("post", "/api/experts", {"name": "x", "role": "lawyer", "email": "not-mail"}, 422, "email"),
        ("post", "/api/experts", {"name": "x", "role": "lawyer", "email": "a@b.cn", "timezone": "Mars/Base"}, 422, "timezone"),
        ("post", "/api/experts", {"name": "x", "role": "lawyer", "email": "a@b.cn", "salary": 1}, 422, "salary"),
        ("post", "/api/disputes", {"title": "t", "dispute_type": "neighbour", "scale": -3}, 422, "scale"),
        ("post", "/api/disputes", {"title": "t", "dispute_type": "neighbour", "occurred_at": "2026-11-20T08:00:00"}, 422, "occurred_at"),
        ("post", "/api/disputes", {"title": "t", "dispute_type": "neighbour", "parties": [{"name": "a", "side": "judge"}]}, 422, "parties.0.side"),
    ]
    for method, url, body, status, field in cases:
        response = await getattr(staff_client, method)(url, json=body)
        assert response.status_code == status, (url, body, response.text)
        assert response.json()["field"] == field, response.json()

    expert = await make_expert()
    bad_window = await staff_client.put(f"/api/experts/{expert['id']}/availability",
                                        json={"windows": [{"weekday": 7, "start": "09:00", "end": "10:00"}]})
    assert bad_window.status_code == 422 and bad_window.json()["field"] == "windows.0.weekday"
    half_override = await staff_client.put(f"/api/experts/{expert['id']}/availability",
                                           json={"overrides": [{"date": "2026-12-01", "start": "09:00"}]})
    assert half_override.status_code == 422
    twice = await staff_client.put(f"/api/experts/{expert['id']}/availability",
                                   json={"overrides": [{"date": "2026-12-01"}, {"date": "2026-12-01"}]})
    assert twice.status_code == 422
    bad_range = await staff_client.get(f"/api/experts/{expert['id']}/free?from=2026-12-10&to=2026-12-01")
    assert bad_range.status_code == 422 and bad_range.json()["field"] == "to"
    bad_date = await staff_client.get(f"/api/experts/{expert['id']}/free?from=yesterday")
    assert bad_date.status_code == 422 and bad_date.json()["field"] == "from"
    bad_filter = await staff_client.get("/api/disputes?status=lost")
    assert bad_filter.status_code == 422 and bad_filter.json()["field"] == "status"


async def test_malformed_bodies_get_400_not_500(staff_client: httpx.AsyncClient) -> None:
    for content in (b"{not json", b"[1,2]", b"\xff\xfe", b'"text"'):
        response = await staff_client.post("/api/disputes", content=content, headers={"content-type": "application/json"})
        assert response.status_code == 400, content
        assert "error" in response.json()


async def test_duplicate_email_is_a_conflict(staff_client: httpx.AsyncClient, make_expert: ExpertFactory) -> None:
    first = await make_expert(email="same@example.cn")
    again = await staff_client.post("/api/experts", json={"name": "b", "role": "lawyer", "email": "SAME@example.cn"})
    assert again.status_code == 409 and again.json()["field"] == "email"
    other = await make_expert()
    clash = await staff_client.patch(f"/api/experts/{other['id']}", json={"email": "same@example.cn"})
    assert clash.status_code == 409
    assert first["email"] == "same@example.cn"


async def test_unknown_ids_are_404(staff_client: httpx.AsyncClient) -> None:
    for url in ("/api/experts/999", "/api/disputes/999", "/api/experts/abc", "/api/disputes/99999999999999999999999", "/api/nothing"):
        response = await staff_client.get(url)
        assert response.status_code == 404, url
        assert "error" in response.json()
    moved = await staff_client.post("/api/disputes/999/status", json={"status": "scheduled"})
    assert moved.status_code == 404


async def test_api_needs_a_login(running: Running) -> None:
    client = running.client()
    for url in ("/api/experts", "/api/disputes", "/api/experts/1"):
        assert (await client.get(url)).status_code == 401


async def test_inputs_that_fuzzing_turned_into_500s_are_4xx(running: Running, staff_client: httpx.AsyncClient) -> None:
    from tests.conftest import add_staff, log_in

    await add_staff(running, "chief", role="admin")
    admin = await log_in(running, "chief")
    nested = "[" * 5000 + "]" * 5000
    anonymous = running.client()
    for client, path in ((anonymous, "/api/auth/login"), (staff_client, "/api/disputes"), (staff_client, "/api/experts")):
        response = await client.post(path, content=nested, headers={"content-type": "application/json"})
        assert response.status_code in (400, 403), (path, response.status_code, response.text)
        assert response.json()["error"]
    deep = await staff_client.post("/api/disputes", content='{"title": ' + nested + "}", headers={"content-type": "application/json"})
    assert deep.status_code == 400 and deep.json()["field"] == "body"
    for path in ("/api/schedule?date=9999-12-31&span=week", "/api/schedule?date=0001-01-01",
                 "/api/statistics?from=0001-01-01&to=9999-12-31", "/api/audit?from=0001-01-01&to=9999-12-31",
                 "/api/audit?entity_id=99999999999999999999999", "/api/audit?limit=-1"):
        response = await admin.get(path)
        assert response.status_code == 422, (path, response.status_code, response.text)
        assert response.json()["field"] and response.json()["message"]
    for path in ("/api/sessions/%C2%B3", "/api/disputes/%D9%A3"):  # '³' and '٣' are digits to str.isdigit()
        assert (await staff_client.get(path)).status_code == 404
    expert = (await staff_client.post("/api/experts", json={"name": "时区专家", "role": "lawyer", "email": "tz@e.cn"})).json()
    for zone in ("A" * 300, "Asia/" + "x" * 300, "../../etc/passwd"):
        bad = await staff_client.patch(f"/api/experts/{expert['id']}", json={"timezone": zone})
        assert bad.status_code == 422 and bad.json()["field"] == "timezone", bad.text


async def test_a_number_is_not_a_date(staff_client: httpx.AsyncClient) -> None:
    """pydantic reads a number as seconds since 1970: {"week_of": 0} built a review of 1969-12-29."""
    review = await staff_client.post("/api/reviews", json={"week_of": 0})
    assert review.status_code == 422 and review.json()["field"] == "week_of", review.text
    assert "YYYY-MM-DD" in review.json()["message"]
    dispute = await staff_client.post("/api/disputes", json={"title": "漏水", "dispute_type": "neighbour", "occurred_at": 528610})
    assert dispute.status_code == 422 and dispute.json()["field"] == "occurred_at", dispute.text
    assert (await staff_client.post("/api/disputes", json={"title": "漏水", "dispute_type": "neighbour", "occurred_at": True})).status_code == 422
    written = await staff_client.post("/api/disputes", json={"title": "漏水", "dispute_type": "neighbour",
                                                             "occurred_at": "2026-12-01T09:00:00+08:00"})
    assert written.status_code == 201


async def test_healthz_says_degraded_while_a_media_worker_is_down(running: Running) -> None:
    client = running.client()
    assert (await client.get("/healthz")).json()["status"] == "ok"
    media = running.app.state.media
    media.workers_down = lambda: 1  # between a worker's death and its replacement (signaling/cluster/workers.py)
    health = await client.get("/healthz")
    assert health.status_code == 503 and health.json()["reason"] == "media worker down"
