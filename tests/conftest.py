"""Fixtures: a real SQLite file per test, the real ASGI app, and logged-in clients."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from sqlalchemy import select
from starlette.applications import Starlette

from foundation.config import Settings
from foundation.database import upgrade_database
from server.app import create_app

pytest_plugins = ["tests.needs", "pytester"]

STAFF_PASSWORD = "correct horse battery"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Set to a PostgreSQL server (postgresql://user:password@host/postgres) to run the suite on a
# fresh PostgreSQL database per test instead of a SQLite file (CI runs SQLite, the default).
POSTGRES = os.environ.get("TIAOJIE_TEST_POSTGRES", "")


@pytest.fixture
def make_settings(tmp_path: Path) -> Iterator[Callable[..., Settings]]:
    """Settings on a fresh migrated database: a SQLite file in the test's folder (or PostgreSQL)."""
    created: list[str] = []

    def make(**overrides: Any) -> Settings:
        if POSTGRES and "database_url" not in overrides:
            import psycopg

            name = f"tiaojie_test_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(POSTGRES, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            created.append(name)
            overrides["database_url"] = f"{POSTGRES.rsplit('/', 1)[0]}/{name}".replace("postgresql://", "postgresql+asyncpg://")
        settings = Settings(data_dir=tmp_path, secret_key="test-secret", **{"base_url": "http://test", **overrides})
        upgrade_database(settings.database_url)
        return settings

    yield make
    if created:
        import psycopg

        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            for name in created:
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@dataclasses.dataclass
class Running:
    """An app inside its lifespan, with a client factory."""

    app: Starlette
    clients: list[httpx.AsyncClient]

    def client(self) -> httpx.AsyncClient:
        """A new client with its own cookie jar."""
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://test")
        self.clients.append(client)
        return client

    async def db(self) -> Any:
        """A database session (use as an async context manager)."""
        return self.app.state.db_sessions()


@contextlib.asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[Running]:
    """The real app for these settings, inside its lifespan; its clients close with it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        state = Running(app=app, clients=[])
        try:
            yield state
        finally:
            for client in state.clients:
                await client.aclose()


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[Running]:
    async with started(settings) as state:
        yield state


async def with_csrf(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Fetch the session's CSRF token and send it on every later request."""
    response = await client.get("/api/auth/csrf")
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client


async def add_staff(running: Running, username: str = "staff1", role: str = "staff", office: str | None = None) -> int:
    """A staff account in the office of that name (made if need be; default the first office); its id."""
    from accounts.service import create_staff
    from experts.models import Office
    from experts.offices import first_office

    async with running.app.state.db_sessions() as db, db.begin():
        if office is None:
            office_id = await first_office(db, "测试警务室")
        else:
            office_id = await db.scalar(select(Office.id).where(Office.name == office))
            if office_id is None:
                row = Office(name=office, kind="level" if role in ("supervisor", "sysadmin") else "office")
                db.add(row)
                await db.flush()
                office_id = row.id
        return (await create_staff(db, username, STAFF_PASSWORD, role=role, office_id=office_id)).id


async def log_in(running: Running, username: str = "staff1", password: str = STAFF_PASSWORD) -> httpx.AsyncClient:
    """A new client logged in as an existing staff account, sending its CSRF token."""
    client = await with_csrf(running.client())
    response = await client.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client


async def expert_client(running: Running, expert_id: int) -> httpx.AsyncClient:
    """A new client signed in as an expert by a magic link, sending its CSRF token."""
    client = await with_csrf(running.client())
    token = running.app.state.tokens.magic_link(expert_id)
    response = await client.post("/api/auth/expert-login", json={"token": token})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client


@pytest.fixture
async def staff_client(running: Running) -> httpx.AsyncClient:
    """A client logged in as a staff member, sending its CSRF token."""
    await add_staff(running)
    return await log_in(running)


ExpertFactory = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def make_expert(staff_client: httpx.AsyncClient) -> ExpertFactory:
    """Create an expert through the API."""
    counter = iter(range(1, 10_000))

    async def make(**fields: Any) -> dict[str, Any]:
        n = next(counter)
        body = {"name": f"专家{n}", "role": "lawyer", "email": f"e{n}@example.cn", **fields}
        response = await staff_client.post("/api/experts", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    return make


class Inbox:
    """What a real SMTP server (aiosmtpd) received."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.arrived = asyncio.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        self.arrived.set()
        return "250 OK"

    async def wait_for(self, count: int, timeout_s: float = 10) -> list[Message]:
        """Wait until at least `count` messages arrived."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(self.messages) < count:
            assert asyncio.get_running_loop().time() < deadline, f"only {len(self.messages)} of {count} mails arrived"
            await asyncio.sleep(0.05)
        return self.messages


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on loopback and its inbox."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def token_of(session: dict[str, Any], kind: str, n: int = 0) -> str:
    """The invite token of the n-th participant of a kind in a booked session (as the API gives it)."""
    return [p for p in session["participants"] if p["kind"] == kind][n]["join_url"].rsplit("/", 1)[1]


class Live:
    """A running server on loopback with a booked session."""

    def __init__(self, base: str, staff: httpx.AsyncClient, session: dict[str, Any], app: Any = None) -> None:
        self.app = app
        self.base = base
        self.staff = staff
        self.session = session

    def token(self, kind: str, n: int = 0) -> str:
        return token_of(self.session, kind, n)

    def ws_url(self, session_id: int | None = None) -> str:
        return f"ws{self.base.removeprefix('http')}/ws/rooms/{session_id or self.session['id']}"


async def book(staff: httpx.AsyncClient, start: dt.datetime, experts: list[int], dispute_id: int) -> dict[str, Any]:
    response = await staff.post("/api/sessions", json={
        "dispute_id": dispute_id, "start": start.isoformat(), "end": (start + dt.timedelta(hours=1)).isoformat(),
        "experts": [{"expert_id": e} for e in experts], "override_availability": True,
    })
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def live_host() -> str:
    """Where the `live` server listens (a test module may override this fixture)."""
    return "127.0.0.1"


@pytest.fixture
async def live(settings: Settings, live_host: str) -> AsyncIterator[Live]:
    """A real server on loopback (uvicorn) with two experts, a dispute and a session starting
    in five minutes (so its room is open), and a logged-in staff client."""
    port = free_port()
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host=live_host, port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    await add_staff(Running(app=app, clients=[]))
    async with httpx.AsyncClient(base_url=base) as staff:
        token = (await staff.get("/api/auth/csrf")).json()["csrf_token"]
        login = await staff.post("/api/auth/login", json={"username": "staff1", "password": STAFF_PASSWORD}, headers={"X-CSRF-Token": token})
        staff.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        experts = []
        for n, role in enumerate(("legal_officer", "lawyer")):
            experts.append((await staff.post("/api/experts", json={"name": f"专家{n}", "role": role, "email": f"x{n}@e.cn"})).json()["id"])
        dispute = (await staff.post("/api/disputes", json={
            "title": "宠物狗纠纷", "dispute_type": "animals",
            "parties": [{"name": "张建军", "side": "applicant"}, {"name": "李秀兰", "side": "respondent"}]})).json()
        start = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)
        session = await book(staff, start, experts, dispute["id"])
        yield Live(base, staff, session, app)
    server.should_exit = True
    await task


