"""Backup and restore: a backup taken while the server runs, restored into a fresh folder, has
every dispute, session, signature and file, and the secret key; a restore never overwrites data
or a key unless forced, and refuses a damaged archive."""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import re
import sqlite3
import tarfile
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from foundation import backup
from foundation.config import Settings
from server.backups import source
from server.cli import main
from server.demo import load_demo
from tests.conftest import Running, started


def counts(database: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(database)) as db:
        return {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("disputes", "mediation_sessions", "signatures", "evidence", "identity_checks")}


async def test_a_backup_taken_while_serving_restores_everything_into_a_fresh_folder(
    running: Running, staff_client: httpx.AsyncClient, tmp_path: Path,
) -> None:
    async with running.app.state.db_sessions() as db, db.begin():
        await load_demo(db)
    dispute = (await staff_client.post("/api/disputes", json={"title": "漏水", "dispute_type": "neighbour"})).json()
    uploaded = await staff_client.post(f"/api/disputes/{dispute['id']}/evidence?name=说明.txt", content="楼上漏水的经过".encode())
    assert uploaded.status_code == 201, uploaded.text
    settings = running.app.state.settings

    archive = backup.create(source(settings), tmp_path / "backups", now=dt.datetime(2026, 12, 7, 2, 0, tzinfo=dt.timezone.utc))
    assert archive.name == "tiaojie-backup-20261207-020000.tar.gz" and archive.stat().st_mode & 0o077 == 0
    assert (await staff_client.get("/api/disputes")).status_code == 200  # the server went on serving

    fresh = tmp_path / "fresh"
    target = backup.Source(f"sqlite+aiosqlite:///{fresh / 'tiaojie.sqlite3'}", fresh, "")
    manifest = backup.restore(archive, target)
    before = counts(settings.data_dir / "tiaojie.sqlite3")
    assert counts(fresh / "tiaojie.sqlite3") == before and before["signatures"] > 0 and before["evidence"] == 1
    assert manifest["counts"]["disputes"] == before["disputes"]
    stored = next((settings.data_dir / "evidence").rglob("*.*"))
    assert (fresh / stored.relative_to(settings.data_dir)).read_bytes() == "楼上漏水的经过".encode()
    assert (fresh / "secret_key").read_text() == settings.secret_key

    # Never over data, or over another key, unless forced.
    with pytest.raises(backup.BackupError, match="already holds data"):
        backup.restore(archive, target)
    (fresh / "tiaojie.sqlite3").unlink()
    (fresh / "secret_key").write_text("another key")
    with pytest.raises(backup.BackupError, match="another secret key"):
        backup.restore(archive, target)
    backup.restore(archive, target, force=True)
    assert (fresh / "secret_key").read_text() == settings.secret_key

    # A damaged archive is refused before anything is touched.
    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(archive) as tar, tarfile.open(damaged, "w:gz") as out:
        for member in tar.getmembers():
            data = tar.extractfile(member)
            if member.name == "database.sqlite3" and data is not None:
                body = bytearray(data.read())
                body[len(body) // 2] ^= 0xFF
                member.size = len(body)
                out.addfile(member, io.BytesIO(bytes(body)))
            else:
                out.addfile(member, data)
    with pytest.raises(backup.BackupError, match="database.sqlite3 is missing or damaged"):
        backup.restore(damaged, backup.Source(f"sqlite+aiosqlite:///{tmp_path / 'x' / 'db.sqlite3'}", tmp_path / "x", ""))
    assert not (tmp_path / "x" / "db.sqlite3").exists()

    # The kept count: the oldest go.
    for hour in (3, 4, 5):
        backup.create(source(settings), tmp_path / "backups", now=dt.datetime(2026, 12, 7, hour, tzinfo=dt.timezone.utc))
    removed = backup.prune(tmp_path / "backups", keep=2)
    assert [p.name for p in removed] == ["tiaojie-backup-20261207-020000.tar.gz", "tiaojie-backup-20261207-030000.tar.gz"]


def test_backup_and_restore_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TIAOJIE_DATA_DIR", str(tmp_path / "office"))
    main(["demo"])
    capsys.readouterr()
    main(["backup", str(tmp_path / "backups")])
    said = capsys.readouterr().out
    archive = re.search(r"Backup written: (\S+\.tar\.gz)", said).group(1)  # type: ignore[union-attr]
    assert "Copy it off this machine" in said
    monkeypatch.setenv("TIAOJIE_DATA_DIR", str(tmp_path / "new-machine"))
    main(["restore", archive])
    assert "the schema is up to date" in capsys.readouterr().out
    assert counts(tmp_path / "new-machine" / "tiaojie.sqlite3") == counts(tmp_path / "office" / "tiaojie.sqlite3")
    assert (tmp_path / "new-machine" / "secret_key").read_text() == (tmp_path / "office" / "secret_key").read_text()
    with pytest.raises(SystemExit, match="already holds data"):
        main(["restore", archive])


async def test_the_daily_backup_is_a_job_that_writes_an_archive_and_keeps_the_newest(
    make_settings: Callable[..., Settings], tmp_path: Path,
) -> None:
    from server import backups

    settings = make_settings(backup_dir=str(tmp_path / "daily"), backup_keep=2)
    async with started(settings) as state:
        job = state.app.state.jobs.scheduler.get_job("daily-backup")
        assert job is not None and job.next_run_time.astimezone(ZoneInfo("Asia/Shanghai")).hour == 2
        assert backups.age_s(settings) is None
        for _ in range(3):
            await backups.daily_backup(None)  # type: ignore[arg-type]  # the job's transaction is not used
            while backups._running:
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.01)  # archives are named by the second
        assert len(list((tmp_path / "daily").glob("tiaojie-backup-*.tar.gz"))) == 2
        age = backups.age_s(settings)
        assert age is not None and age < 10
