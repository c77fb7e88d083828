"""A full disk: every write answers 503 with a Chinese message and Retry-After (the login
included, whose check runs in a middleware), /healthz says degraded with the reason, nothing
written before is lost, and once there is room again everything works."""
from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from foundation.config import Settings
from foundation.database import upgrade_database
from tests.conftest import STAFF_PASSWORD, add_staff, log_in, started

pytestmark = pytest.mark.tmpfs


@contextlib.contextmanager
def small_disk(folder: Path, megabytes: int) -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Write a file until the disk is full; the file."""
    filler = folder / "filler"
    with filler.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    return filler


async def test_a_full_disk_answers_503_and_recovers(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", 8) as disk:
        settings = Settings(data_dir=disk, secret_key="test-secret", base_url="http://test", disk_min_free_mb=1)
        upgrade_database(settings.database_url)
        async with started(settings) as running:
            await add_staff(running)
            client = await log_in(running)
            kept = await client.post("/api/disputes", json={"title": "磁盘满之前", "dispute_type": "neighbour"})
            assert kept.status_code == 201
            assert (await client.get("/healthz")).json()["status"] == "ok"
            filler = fill(disk)

            health = await client.get("/healthz")
            assert health.status_code == 503 and health.json()["reason"] == "disk full" and health.json()["status"] == "degraded"
            refused = await client.post("/api/disputes", json={"title": "磁盘满时", "dispute_type": "neighbour"})
            assert refused.status_code == 503, refused.text
            assert refused.json()["message"] == "服务器磁盘已满，暂时无法保存新的内容，请联系系统管理员"
            assert refused.headers["Retry-After"] == "60"
            fresh = running.client()
            token = (await fresh.get("/api/auth/csrf")).json()["csrf_token"]
            login = await fresh.post("/api/auth/login", json={"username": "staff1", "password": STAFF_PASSWORD},
                                     headers={"X-CSRF-Token": token})
            assert login.status_code == 503, login.text
            assert (await client.get(f"/api/disputes/{kept.json()['id']}")).status_code == 200  # reading still works

            filler.unlink()
            assert (await client.get("/healthz")).status_code == 200
            again = await client.post("/api/disputes", json={"title": "有空间了", "dispute_type": "neighbour"})
            assert again.status_code == 201
            titles = {d["title"] for d in (await client.get("/api/disputes")).json()}
            assert {"磁盘满之前", "有空间了"} <= titles and "磁盘满时" not in titles
