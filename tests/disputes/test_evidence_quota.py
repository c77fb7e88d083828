"""A party's link cannot fill the disk: quotas per link (files, bytes) and per dispute, uploads per
minute, one at a time; a full disk is a 507 that leaves nothing behind. Messages in Chinese."""
from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from foundation.config import Settings
from tests.conftest import Running, token_of
from tests.disputes.test_evidence import JPEG, PNG, evidence_rows, stored_files
from tests.scheduling.conftest import booking, next_monday


@pytest.fixture
def settings(make_settings: Callable[..., Settings], request: pytest.FixtureRequest) -> Settings:
    quotas = {"evidence_max_bytes": 4096, "evidence_files_per_link": 3, "evidence_bytes_per_link": 10 * 1024,
              "evidence_files_per_dispute": 5, "evidence_uploads_per_minute": 100}
    return make_settings(**{**quotas, **getattr(request, "param", {})})


async def party_link(staff_client: httpx.AsyncClient, pool: dict[str, Any], hour: int = 10) -> str:
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(hour)))).json()
    return f"/api/join/{token_of(session, 'party')}/evidence"


async def test_quotas_per_link_and_per_dispute(running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any],
                                              settings: Settings) -> None:
    url = await party_link(staff_client, pool)
    party = running.client()
    answers = [(await party.post(url, params={"name": f"照片{n}.jpg"}, content=JPEG)).status_code for n in range(4)]
    assert answers == [201, 201, 201, 413]
    refused = await party.post(url, params={"name": "照片9.jpg"}, content=JPEG)
    assert refused.json()["message"].startswith("您已提交 3 个文件") and "每人上限为 3 个文件" in refused.json()["message"]
    office = f"/api/disputes/{pool['dispute']['id']}/evidence"
    for n in range(2):  # the office adds two more: the dispute is full, for the office too
        assert (await staff_client.post(office, params={"name": f"现场{n}.png"}, content=PNG)).status_code == 201
    full = await staff_client.post(office, params={"name": "更多.png"}, content=PNG)
    assert full.status_code == 413 and full.json()["message"].startswith("此纠纷已有 5 个文件")
    assert len(stored_files(settings)) == 5 and await evidence_rows(running) == 5


@pytest.mark.parametrize("settings", [{"evidence_uploads_per_minute": 2}], indirect=True)
async def test_uploads_per_minute_and_one_at_a_time(running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    url = await party_link(staff_client, pool)
    party = running.client()
    assert [(await party.post(url, params={"name": f"照片{n}.jpg"}, content=JPEG)).status_code for n in range(2)] == [201, 201]
    third = await party.post(url, params={"name": "照片2.jpg"}, content=JPEG)
    assert third.status_code == 429 and 1 <= int(third.headers["Retry-After"]) <= 61
    assert third.json()["message"].startswith("上传太频繁")

    gate = asyncio.Event()

    async def slow() -> Any:  # a file still arriving
        yield b"\xff\xd8\xff\xe0"
        await gate.wait()
        yield b"rest of the photo"

    other = await party_link(staff_client, pool, hour=14)  # the party's link to another session
    first = asyncio.create_task(party.post(other, params={"name": "慢.jpg"}, content=slow()))
    await asyncio.sleep(0.3)
    second = await party.post(other, params={"name": "快.jpg"}, content=JPEG)
    assert second.status_code == 429 and second.json()["message"].startswith("请逐个上传")
    gate.set()
    assert (await first).status_code == 201


@contextlib.contextmanager
def small_disk() -> Iterator[None]:
    """Files of this process may not grow past 64 KiB (the kernel answers EFBIG, as a full disk answers ENOSPC)."""
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, old_limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)


@pytest.mark.parametrize("settings", [{"evidence_max_bytes": 1 << 20, "evidence_bytes_per_link": 1 << 20}], indirect=True)
async def test_a_full_disk_is_507_and_leaves_no_partial_file(running: Running, staff_client: httpx.AsyncClient,
                                                             pool: dict[str, Any], settings: Settings) -> None:
    url = await party_link(staff_client, pool)
    with small_disk():
        answer = await running.client().post(url, params={"name": "大照片.jpg"}, content=JPEG + b"x" * (200 * 1024))
    assert answer.status_code == 507 and answer.json()["message"].startswith("服务器存储空间已满")
    assert stored_files(settings) == [] and await evidence_rows(running) == 0
