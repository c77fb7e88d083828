"""Evidence files: limits, checksums on disk, who may see which file, nothing kept when refused."""
from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from disputes.models import Evidence
from foundation.config import Settings
from tests.conftest import Running, token_of
from tests.scheduling.conftest import booking, next_monday

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
JPEG = b"\xff\xd8\xff\xe0" + b"photo" * 200
PDF = b"%PDF-1.4\n" + b"0" * 900
LIMIT = 4096


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(evidence_max_bytes=LIMIT)


def stored_files(settings: Settings) -> list[Path]:
    return sorted(p for p in (settings.data_dir / "evidence").rglob("*") if p.is_file())


async def evidence_rows(running: Running) -> int:
    async with running.app.state.db_sessions() as db:
        return int(await db.scalar(select(func.count(Evidence.id))) or 0)


async def test_who_sees_which_file(running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any], settings: Settings) -> None:
    dispute_id = pool["dispute"]["id"]
    body = booking(pool, next_monday(10), observers=[{"name": "司法所 王科长", "email": "wang@example.cn"}])
    session = (await staff_client.post("/api/sessions", json=body)).json()
    applicant, respondent, expert = token_of(session, "party", 0), token_of(session, "party", 1), token_of(session, "expert")
    visitor = running.client()

    office = await staff_client.post(f"/api/disputes/{dispute_id}/evidence", params={"name": "现场照片.png", "description": "狗咬伤处"}, content=PNG)
    assert office.status_code == 201, office.text
    assert office.json()["sha256"] == hashlib.sha256(PNG).hexdigest() and office.json()["size_bytes"] == len(PNG)
    own = await visitor.post(f"/api/join/{applicant}/evidence", params={"name": "C:\\手机\\医药费发票.jpg"}, content=JPEG)
    assert own.status_code == 201, own.text
    receipt = own.json()
    assert receipt["filename"] == "医药费发票.jpg" and receipt["content_type"] == "image/jpeg"

    # On disk under the data folder, with the checksum recorded.
    files = stored_files(settings)
    assert len(files) == 2 and {hashlib.sha256(f.read_bytes()).hexdigest() for f in files} == {
        hashlib.sha256(PNG).hexdigest(), hashlib.sha256(JPEG).hexdigest()}

    def names(response: httpx.Response) -> list[str]:
        assert response.status_code == 200, response.text
        return [item["filename"] for item in response.json()]

    assert names(await staff_client.get(f"/api/disputes/{dispute_id}/evidence")) == ["现场照片.png", "医药费发票.jpg"]
    assert names(await visitor.get(f"/api/join/{expert}/evidence")) == ["现场照片.png", "医药费发票.jpg"]
    assert names(await visitor.get(f"/api/join/{applicant}/evidence")) == ["医药费发票.jpg"]
    assert names(await visitor.get(f"/api/join/{respondent}/evidence")) == []
    assert (await visitor.get(f"/api/join/{respondent}/evidence/{receipt['id']}")).status_code == 404

    download = await visitor.get(f"/api/join/{expert}/evidence/{receipt['id']}")
    assert download.status_code == 200 and download.content == JPEG
    assert download.headers["content-type"] == "image/jpeg" and download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["x-checksum-sha256"] == receipt["sha256"]
    assert "filename*=UTF-8''%E5%8C%BB" in download.headers["content-disposition"]
    assert (await staff_client.get(f"/api/evidence/{office.json()['id']}/file")).content == PNG

    # Staff share the receipt: now the other party sees it too.
    shared = await staff_client.post(f"/api/evidence/{receipt['id']}/share", json={"shared": True})
    assert shared.status_code == 200 and shared.json()["shared"] is True
    assert names(await visitor.get(f"/api/join/{respondent}/evidence")) == ["医药费发票.jpg"]
    assert (await visitor.get(f"/api/join/{respondent}/evidence/{receipt['id']}")).content == JPEG
    assert (await staff_client.post(f"/api/evidence/{receipt['id']}/share", json={"shared": "maybe"})).status_code == 422

    # Only a valid link, and not an observer's.
    assert (await visitor.get("/api/join/not-a-token/evidence")).status_code == 401
    observer = token_of(session, "observer")
    assert (await visitor.post(f"/api/join/{observer}/evidence", params={"name": "a.png"}, content=PNG)).status_code == 403
    assert names(await visitor.get(f"/api/join/{observer}/evidence")) == ["医药费发票.jpg"]  # shared only
    assert (await running.client().get(f"/api/disputes/{dispute_id}/evidence")).status_code == 401
    assert (await staff_client.post("/api/disputes/999/evidence", params={"name": "a.png"}, content=PNG)).status_code == 404
    assert await evidence_rows(running) == 2 and len(stored_files(settings)) == 2


async def test_refused_uploads_leave_nothing(running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any], settings: Settings) -> None:
    dispute_id = pool["dispute"]["id"]
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    party = token_of(session, "party")
    url = f"/api/join/{party}/evidence"
    client = running.client()

    too_big = await client.post(url, params={"name": "录音.mp3"}, content=b"ID3" + b"x" * LIMIT)
    assert too_big.status_code == 413 and "limit" in too_big.json()["error"]

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while streaming
        yield b"%PDF-1.7\n"
        for _ in range(10):
            yield b"y" * 1000

    streamed = await staff_client.post(f"/api/disputes/{dispute_id}/evidence", params={"name": "合同.pdf"}, content=chunked())
    assert streamed.status_code == 413, streamed.text

    program = await client.post(url, params={"name": "证据.exe"}, content=b"MZ\x90\x00")
    assert program.status_code == 415 and program.json()["field"] == "name" and "pdf" in program.json()["error"]
    disguised = await client.post(url, params={"name": "照片.jpg"}, content=PDF)
    assert disguised.status_code == 415 and "content" in disguised.json()["error"]
    empty = await client.post(url, params={"name": "空.pdf"}, content=b"")
    assert empty.status_code == 422
    unnamed = await client.post(url, content=PDF)
    assert unnamed.status_code == 422 and unnamed.json()["field"] == "name"
    hidden = await client.post(url, params={"name": "../.htaccess"}, content=b"x")
    assert hidden.status_code == 422

    assert await evidence_rows(running) == 0
    assert stored_files(settings) == []
    accepted = await client.post(url, params={"name": "合同.pdf"}, content=PDF)
    assert accepted.status_code == 201 and len(stored_files(settings)) == 1


async def test_a_file_missing_from_storage_is_a_clear_error(running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any],
                                                            settings: Settings) -> None:
    # (A node of a cluster whose data folder is not the shared one, or a file removed by hand.)
    dispute_id = pool["dispute"]["id"]
    office = await staff_client.post(f"/api/disputes/{dispute_id}/evidence", params={"name": "现场照片.png"}, content=PNG)
    assert office.status_code == 201
    for path in stored_files(settings):
        path.unlink()
    missing = await staff_client.get(f"/api/evidence/{office.json()['id']}/file")
    assert missing.status_code == 404, missing.text
    assert "missing from this server's storage" in missing.json()["error"] and "存储" in missing.json()["message"]

