"""Schema-driven fuzzing (schemathesis) of every operation in the OpenAPI document, valid and
invalid input, logged in as an administrator, against a real server: no 5xx, ever."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import hypothesis
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode

from foundation.config import Settings
from server.app import create_app
from tests.conftest import STAFF_PASSWORD, free_port

EXAMPLES_PER_MODE = 12
# Operations that would end the fuzzer's own login.
SKIP = {"POST /api/auth/logout", "POST /api/auth/password", "PATCH /api/staff/{id}"}


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    """A real uvicorn server in a thread (schemathesis calls it synchronously)."""
    port = free_port()
    instance = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=20)


def _admin_login(base: str, settings: Settings) -> tuple[dict[str, str], dict[str, str]]:
    import asyncio

    from accounts.service import create_staff
    from experts.offices import first_office
    from foundation.database import create_engine, create_session_factory

    async def add() -> None:
        engine = create_engine(settings.database_url)
        async with create_session_factory(engine)() as db, db.begin():
            await create_staff(db, "fuzzer", STAFF_PASSWORD, role="admin", office_id=await first_office(db, "测试警务室"))
        await engine.dispose()

    asyncio.run(add())
    with httpx.Client(base_url=base) as client:
        token = client.get("/api/auth/csrf").json()["csrf_token"]
        login = client.post("/api/auth/login", json={"username": "fuzzer", "password": STAFF_PASSWORD},
                            headers={"X-CSRF-Token": token})
        assert login.status_code == 200
        return dict(client.cookies), {"X-CSRF-Token": login.json()["csrf_token"]}


def test_no_operation_answers_a_server_error(server: str, settings: Settings) -> None:
    cookies, headers = _admin_login(server, settings)
    schema = schemathesis.openapi.from_dict(httpx.get(f"{server}/api/openapi.json").json())
    failures: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if f"{operation.method.upper()} {operation.path}" in SKIP:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @hypothesis.settings(max_examples=EXAMPLES_PER_MODE, deadline=None, database=None, derandomize=True,
                                 phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            def call(case: schemathesis.Case) -> None:
                nonlocal calls
                response = case.call(base_url=server, headers=headers, cookies=cookies, timeout=30)
                calls += 1
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path} {response.status_code}: {response.text[:200]}")

            try:
                call()
            except hypothesis.errors.Unsatisfiable:
                pass  # nothing invalid to send (an operation without parameters or body)
    assert calls > 500, calls
    # Still logged in: the fuzzing reached past the login on every operation.
    assert httpx.get(f"{server}/api/auth/me", cookies=cookies).status_code == 200
    assert not failures, "\n".join(failures[:20])
