"""Offices apart: every route of the API and every page, walked as another office's clerk and
admin with the real ids of one office's objects, answers nothing of them; a supervisor looks at
both and changes neither; experts are shared, their calendar one across offices."""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

from tests.conftest import Running, add_staff, log_in
from tests.scheduling.conftest import next_monday

# What only office A's objects hold: none of it may reach office B.
MARKERS = ("甲所独有的纠纷", "甲所当事人", "13900001111", "only-a@example.cn", "甲所证据.txt")

# Routes that hold no office's data, or that a personal link opens (its own authority, tested in
# tests/scheduling/test_invites.py): left out of the walk, each for its reason.
NOT_OFFICE_DATA = {
    "POST /api/auth/login", "POST /api/auth/logout", "GET /api/auth/me", "GET /api/auth/csrf",
    "POST /api/auth/magic-link", "POST /api/auth/expert-login", "POST /api/auth/password",
}
TOKEN_ROUTES = re.compile(r"^/api/join/\{token\}")
# Each office's own templates, read and written by its own admin: B's PUT changes B's template
# (tests/outcomes/test_outcomes.py shows A's stays as it was).
OWN_TEMPLATES = {"PUT /api/agreement-templates/{type}", "DELETE /api/agreement-templates/{type}"}


async def office_a(running: Running) -> dict[str, Any]:
    """Office A's clerk and one of each of its objects."""
    await add_staff(running, "a-clerk")
    await add_staff(running, "a-admin", role="admin")
    a = await log_in(running, "a-clerk")
    expert = (await a.post("/api/experts", json={"name": "甲所专家", "role": "lawyer", "email": "only-a@example.cn"})).json()
    dispute = (await a.post("/api/disputes", json={
        "title": "甲所独有的纠纷", "dispute_type": "animals", "risk_level": "high",
        "parties": [{"name": "甲所当事人", "side": "applicant", "phone": "13900001111"}]})).json()
    start = next_monday(10)
    session = (await a.post("/api/sessions", json={
        "dispute_id": dispute["id"], "start": start.isoformat(), "end": (start + dt.timedelta(hours=1)).isoformat(),
        "experts": [{"expert_id": expert["id"]}], "override_availability": True})).json()
    assert session.get("id"), session
    evidence = (await a.post(f"/api/disputes/{dispute['id']}/evidence?name=甲所证据.txt", content=b"evidence")).json()
    outcome = (await a.post(f"/api/sessions/{session['id']}/outcome", json={"kind": "agreement", "terms": "互相道歉"})).json()
    review = (await a.post("/api/reviews", json={})).json()
    message = (await a.get("/api/outbox")).json()[0]
    admin = await log_in(running, "a-admin")
    audit = (await admin.get("/api/audit")).json()
    clerk_id = next(u["id"] for u in (await admin.get("/api/staff")).json() if u["username"] == "a-clerk")
    return {
        "client": a, "expert": expert["id"], "dispute": dispute["id"], "session": session["id"], "evidence": evidence["id"],
        "follow_up": outcome["follow_ups"][0]["id"], "review": review["id"], "outbox": message["id"],
        "audit": audit["entries"][0]["id"] if isinstance(audit, dict) else audit[0]["id"], "staff": clerk_id,
        "participant": next(p["id"] for p in session["participants"] if p["kind"] == "party"),
        "party_expert": expert["id"],
    }


def path_ids(path: str, a: dict[str, Any]) -> str:
    """The path with A's real ids put in."""
    prefix = {"/api/experts": "expert", "/api/disputes": "dispute", "/api/sessions": "session", "/api/evidence": "evidence",
              "/api/follow-ups": "follow_up", "/api/reviews": "review", "/api/outbox": "outbox", "/api/audit": "audit",
              "/api/staff": "staff"}
    kind = next(value for key, value in prefix.items() if path.startswith(key + "/"))
    return path.replace("{id}", str(a[kind])).replace("{type}", "animals").replace("{participant}", str(a["participant"])) \
        .replace("{kind}", "agreement")


def body_for(method: str, path: str, a: dict[str, Any]) -> Any:
    """A body that the route would take from A's own clerk: so that B's refusal is the office's, not the input's."""
    start = next_monday(14).isoformat()
    bodies: dict[str, Any] = {
        "PATCH /api/staff/{id}": {"active": False},
        "PATCH /api/experts/{id}": {"organisation": "改了"},
        "PUT /api/experts/{id}/availability": {"windows": [], "overrides": []},
        "PATCH /api/disputes/{id}": {"title": "改了"},
        "POST /api/disputes/{id}/parties": {"name": "新人", "side": "respondent"},
        "POST /api/disputes/{id}/status": {"status": "closed"},
        "POST /api/sessions/{id}/reschedule": {"start": start, "override_availability": True},
        "POST /api/sessions/{id}/cancel": {"reason": "改期"},
        "POST /api/sessions/{id}/replace": {"participant_id": a["participant"]},
        "POST /api/sessions/{id}/revoke": {"participant_id": a["participant"]},
        "POST /api/sessions/{id}/reissue": {"participant_id": a["participant"]},
        "POST /api/sessions/{id}/outcome": {"kind": "no_agreement"},
        "POST /api/follow-ups/{id}": {"result": "kept"},
        "POST /api/evidence/{id}/share": {"shared": True},
        "PATCH /api/sessions/{id}/outcome": {"terms": "改了"},
        "PUT /api/sessions/{id}/record": {"text": "改了", "revision": 0},
        "POST /api/sessions/{id}/participants/{participant}/identity": {"document_type": "resident_id", "number": "1234"},
    }
    return bodies.get(f"{method} {path}")


async def test_every_route_refuses_another_offices_objects(running: Running) -> None:
    a = await office_a(running)
    await add_staff(running, "b-clerk", office="朝阳警务室")
    await add_staff(running, "b-admin", role="admin", office="朝阳警务室")
    operations = [(m.upper(), p, op) for p, ops in (await a["client"].get("/api/openapi.json")).json()["paths"].items()
                  for m, op in ops.items()]
    walked = 0
    for username in ("b-clerk", "b-admin"):
        b = await log_in(running, username)
        for method, path, op in operations:
            key = f"{method} {path}"
            if key in NOT_OFFICE_DATA or TOKEN_ROUTES.match(path) or key in OWN_TEMPLATES:
                continue
            if "{" not in path:
                if method == "GET":  # a list: B's own things, none of A's
                    response = await b.get(path)
                    assert response.status_code < 500, (key, response.text)
                    assert not any(m in response.text for m in MARKERS), (username, key, response.text[:300])
                    walked += 1
                continue
            url = path_ids(path, a)
            body = body_for(method, path, a)
            assert body is not None or "requestBody" not in op, f"give {key} a body in body_for()"
            if path.endswith("/evidence") and method == "POST":
                response = await b.post(url + "?name=x.txt", content=b"x")
            else:
                response = await b.request(method, url, json=body)
            assert response.status_code in (403, 404), (username, key, response.status_code, response.text[:300])
            assert not any(m in response.text for m in MARKERS), (username, key, response.text[:300])
            walked += 1
    # The ids were real: A's clerk reads each of these objects.
    for path in ("/api/disputes/{id}", "/api/sessions/{id}", "/api/experts/{id}", "/api/reviews/{id}", "/api/evidence/{id}/file",
                 "/api/disputes/{id}/evidence", "/api/sessions/{id}/outcome"):
        assert (await a["client"].get(path_ids(path, a))).status_code == 200, path
    # B cannot book A's expert, nor A's dispute, nor make an account in A.
    b = await log_in(running, "b-admin")
    start = next_monday(16)
    booking = {"start": start.isoformat(), "end": (start + dt.timedelta(hours=1)).isoformat(), "override_availability": True}
    own = (await b.post("/api/disputes", json={"title": "乙所纠纷", "dispute_type": "neighbour"})).json()
    assert (await b.post("/api/sessions", json={**booking, "dispute_id": own["id"], "experts": [{"expert_id": a["expert"]}]})).status_code == 404
    mine = (await b.post("/api/experts", json={"name": "乙所专家", "role": "lawyer", "email": "b@example.cn"})).json()
    assert (await b.post("/api/sessions", json={**booking, "dispute_id": a["dispute"], "experts": [{"expert_id": mine["id"]}]})).status_code == 404
    assert (await b.post("/api/scheduling/search", json={"dispute_id": a["dispute"]})).status_code == 404
    account = {"username": "intruder", "password": "long enough password", "office_id": 1}
    assert (await b.post("/api/staff", json=account)).status_code == 403
    print(f"walked {walked} route calls as another office")  # noqa: T201 (shown with -s; the note quotes it)
    assert walked >= 80  # 41 routes, each as the clerk and as the admin


async def test_every_page_refuses_another_offices_objects(running: Running) -> None:
    a = await office_a(running)
    await add_staff(running, "b-clerk", office="朝阳警务室")
    b = await log_in(running, "b-clerk")
    pages = ["/disputes/{d}", "/disputes/{d}/book", "/sessions/{s}", "/sessions/{s}/agreement", "/sessions/{s}/agreement.pdf",
             "/sessions/{s}/documents/agreement.pdf", "/reviews/{r}"]
    for page in pages:
        url = page.format(d=a["dispute"], s=a["session"], r=a["review"])
        assert (await a["client"].get(url)).status_code == 200, url
        response = await b.get(url)
        assert response.status_code == 404, (url, response.status_code)
        assert not any(m in response.text for m in MARKERS), url
    for page in ("/", "/disputes", "/experts", "/follow-ups", "/reviews", "/statistics", "/agreement-templates"):
        response = await b.get(page)
        assert response.status_code == 200 and not any(m in response.text for m in MARKERS), page
    assert "甲所独有的纠纷" in (await a["client"].get("/disputes")).text


async def test_a_supervisor_sees_both_offices_and_changes_neither(running: Running) -> None:
    a = await office_a(running)
    await add_staff(running, "b-clerk", office="朝阳警务室")
    b = await log_in(running, "b-clerk")
    (await b.post("/api/disputes", json={"title": "乙所纠纷", "dispute_type": "neighbour"})).json()
    async with running.app.state.db_sessions() as db, db.begin():
        from sqlalchemy import update

        from experts.models import Office

        level = Office(name="高新分局", kind="level")
        db.add(level)
        await db.flush()
        await db.execute(update(Office).where(Office.kind == "office").values(parent_id=level.id))
    await add_staff(running, "du", role="supervisor", office="高新分局")
    du = await log_in(running, "du")
    titles = {d["title"] for d in (await du.get("/api/disputes")).json()}
    assert titles == {"甲所独有的纠纷", "乙所纠纷"}
    assert (await du.get(f"/api/disputes/{a['dispute']}")).status_code == 200  # drill down to a case
    refused = [
        await du.patch(f"/api/disputes/{a['dispute']}", json={"title": "改了"}),
        await du.post("/api/disputes", json={"title": "督导登记", "dispute_type": "family"}),
        await du.post(f"/api/disputes/{a['dispute']}/parties", json={"name": "督导", "side": "respondent"}),
        await du.post("/api/reviews", json={}),
        await du.patch(f"/api/experts/{a['expert']}", json={"organisation": "x"}),
    ]
    assert [r.status_code for r in refused] == [403] * 5, [r.text for r in refused]
    assert (await du.get(f"/api/disputes/{a['dispute']}")).json()["title"] == "甲所独有的纠纷"
    rollup = (await du.get("/api/reviews/rollup", params={"week_of": dt.date.today().isoformat()})).json()
    assert isinstance(rollup["offices"], list) and set(rollup["totals"]) >= {"new_disputes", "early_warnings"}
    page = await du.get("/")
    assert page.status_code == 200 and "督导" in page.text and "高新分局" in page.text
    assert (await du.get("/accounts")).status_code == 403  # accounts are managed by admins, not looked at


async def test_the_accounts_page_shows_each_admin_what_they_manage(running: Running) -> None:
    await add_staff(running, "a-admin", role="admin", office="金山警务室")
    await add_staff(running, "b-clerk", office="朝阳警务室")
    await add_staff(running, "root", role="sysadmin", office="高新分局")
    a_page = (await (await log_in(running, "a-admin")).get("/accounts")).text
    assert "a-admin" in a_page and "b-clerk" not in a_page and 'id="office-form"' not in a_page
    root_page = (await (await log_in(running, "root")).get("/accounts")).text
    assert all(name in root_page for name in ("a-admin", "b-clerk", "root")) and 'id="office-form"' in root_page
    assert '<option value="supervisor">' in root_page
    assert (await (await log_in(running, "b-clerk")).get("/accounts")).status_code == 403


async def test_a_shared_expert_has_one_calendar_across_offices(running: Running) -> None:
    a = await office_a(running)
    await add_staff(running, "root", role="sysadmin", office="高新分局")
    await add_staff(running, "b-clerk", office="朝阳警务室")
    root, b = await log_in(running, "root"), await log_in(running, "b-clerk")
    offices = {o["name"]: o["id"] for o in (await root.get("/api/offices")).json()}
    shared = await root.patch(f"/api/experts/{a['expert']}", json={"offices": [offices["测试警务室"], offices["朝阳警务室"]]})
    assert shared.status_code == 200 and shared.json()["offices"] == sorted([offices["测试警务室"], offices["朝阳警务室"]])
    own = (await b.post("/api/disputes", json={"title": "乙所纠纷", "dispute_type": "neighbour"})).json()
    # A books this expert at 10:00 on a Monday: B cannot have the same hour, and does not learn A's case.
    start = next_monday(10, weeks=2)
    second = (await a["client"].post("/api/disputes", json={"title": "甲所独有的纠纷二", "dispute_type": "labour"})).json()
    held = await a["client"].post("/api/sessions", json={
        "dispute_id": second["id"], "start": start.isoformat(), "end": (start + dt.timedelta(hours=1)).isoformat(),
        "experts": [{"expert_id": a["expert"]}], "override_availability": True})
    assert held.status_code == 201, held.text
    clash = await b.post("/api/sessions", json={
        "dispute_id": own["id"], "start": start.isoformat(), "end": (start + dt.timedelta(hours=1)).isoformat(),
        "experts": [{"expert_id": a["expert"]}], "override_availability": True})
    assert clash.status_code == 409 and "甲所独有的纠纷" not in clash.text
    later = start + dt.timedelta(hours=3)
    booked = await b.post("/api/sessions", json={
        "dispute_id": own["id"], "start": later.isoformat(), "end": (later + dt.timedelta(hours=1)).isoformat(),
        "experts": [{"expert_id": a["expert"]}], "override_availability": True})
    assert booked.status_code == 201, booked.text
    # Each office sees its own session of the expert's; the expert sees both.
    assert [s["session_id"] for s in (await a["client"].get(f"/api/experts/{a['expert']}/sessions")).json()] == [held.json()["id"]]
    assert [s["session_id"] for s in (await b.get(f"/api/experts/{a['expert']}/sessions")).json()] == [booked.json()["id"]]


async def test_scoping_covers_every_table_that_holds_office_data() -> None:
    """A new table either says how its rows belong to offices or is listed here as holding none."""
    import server.app  # noqa: F401 (every table mapped)
    from foundation.database import Base
    from foundation.scoping import office_tables

    scoped = {cls.__tablename__ for cls in office_tables()}
    not_office_data = {"login_sessions", "login_failures", "used_tokens", "scheduler_lease", "job_runs", "nodes",
                       "room_placements", "expert_offices"}
    assert scoped | not_office_data == set(Base.metadata.tables), set(Base.metadata.tables) - scoped - not_office_data
    assert not scoped & not_office_data
