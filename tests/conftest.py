"""Fixtures: a real SQLite file per test, the real ASGI app, and logged-in clients."""
from __future__ import annotations

import asyncio
import dataclasses
import socket
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator

import httpx
import pytest
from aiosmtpd.controller import Controller
from starlette.applications import Starlette

from server.app import create_app
from server.config import Settings
from server.database import upgrade_database

STAFF_PASSWORD = "correct horse battery"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings on a fresh migrated SQLite file in the test's folder."""

    def make(**overrides: Any) -> Settings:
        settings = Settings(
            data_dir=tmp_path, secret_key="test-secret", base_url="http://test", **overrides
        )
        upgrade_database(settings.database_url)
        return settings

    return make


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


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[Running]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        state = Running(app=app, clients=[])
        yield state
        for client in state.clients:
            await client.aclose()


async def with_csrf(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Fetch the session's CSRF token and send it on every later request."""
    response = await client.get("/api/auth/csrf")
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client


async def add_staff(running: Running, username: str = "staff1", role: str = "staff") -> None:
    from server.accounts import create_staff

    async with running.app.state.db_sessions() as db, db.begin():
        await create_staff(db, username, STAFF_PASSWORD, role=role)


@pytest.fixture
async def staff_client(running: Running) -> httpx.AsyncClient:
    """A client logged in as a staff member, sending its CSRF token."""
    await add_staff(running)
    client = await with_csrf(running.client())
    response = await client.post("/api/auth/login", json={"username": "staff1", "password": STAFF_PASSWORD})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client


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
