"""Backups of everything a Tiaojie server keeps, and restoring one.

One dated archive (`tiaojie-backup-YYYYmmdd-HHMMSS.tar.gz`) holds:

- the database: SQLite copied with its online backup API (consistent while the server writes),
  or PostgreSQL dumped with `pg_dump --format=custom`;
- the secret key (every link, login cookie and signing key depends on it);
- the data folder's files: evidence and recordings;
- `manifest.json`: when, which schema revision, how many disputes, sessions, signatures and
  files, and the SHA-256 of every file in the archive, so that a restore can check it first.

A restore refuses to overwrite a database that holds data, or a different secret key, unless
forced; checks every file against the manifest; then upgrades the schema to this version's.
The archive holds secrets and personal data: it is written readable by its owner only.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

FILES = ("evidence", "recordings")  # folders of the data folder that a backup carries
PREFIX = "tiaojie-backup-"
COUNTED = ("disputes", "mediation_sessions", "signatures", "evidence")


class BackupError(RuntimeError):
    """A backup or restore that cannot be done, and why."""


@dataclasses.dataclass(frozen=True)
class Source:
    """What a backup copies: the database, the data folder, the secret key."""

    database_url: str
    data_dir: Path
    secret_key: str


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise BackupError("an in-memory database has nothing to back up")
    return Path(parsed.database)


def _pg_args(url: str) -> tuple[list[str], dict[str, str]]:
    """pg_dump/pg_restore connection arguments of a SQLAlchemy PostgreSQL URL (password in the environment)."""
    parsed = make_url(url)
    args = ["--host", parsed.host or "localhost", "--port", str(parsed.port or 5432), "--dbname", parsed.database or ""]
    if parsed.username:
        args += ["--username", parsed.username]
    return args, {**os.environ, **({"PGPASSWORD": str(parsed.password)} if parsed.password else {})}


def _counts(sqlite_file: Path) -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(sqlite_file)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        counts = {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in COUNTED if table in tables}
        revision = db.execute("SELECT version_num FROM alembic_version").fetchone() if "alembic_version" in tables else None
    return {"counts": counts, "revision": revision[0] if revision else None}


def create(source: Source, folder: Path, now: dt.datetime | None = None) -> Path:
    """Write one backup archive into `folder`; its path."""
    now = now or dt.datetime.now(dt.timezone.utc)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".partial-") as work:
        staging = Path(work)
        manifest: dict[str, Any] = {"format": 1, "created_at": now.isoformat(), "files": {}}
        sqlite_file = _sqlite_path(source.database_url)
        if sqlite_file is not None:
            if not sqlite_file.exists():
                raise BackupError(f"no database at {sqlite_file}")
            copy = staging / "database.sqlite3"
            with contextlib.closing(sqlite3.connect(sqlite_file)) as live, contextlib.closing(sqlite3.connect(copy)) as target:
                live.backup(target)  # a consistent copy while the server goes on writing
            manifest.update(kind="sqlite", **_counts(copy))
        else:
            args, env = _pg_args(source.database_url)
            dump = staging / "database.pgdump"
            done = subprocess.run(["pg_dump", "--format=custom", "--no-owner", "--file", str(dump), *args],
                                  env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise BackupError(f"pg_dump failed: {done.stderr.strip()}")
            manifest.update(kind="postgresql", counts={}, revision=None)
        (staging / "secret_key").write_text(source.secret_key)
        for name in FILES:
            if (source.data_dir / name).is_dir():
                shutil.copytree(source.data_dir / name, staging / name)
        for path in sorted(p for p in staging.rglob("*") if p.is_file()):
            manifest["files"][path.relative_to(staging).as_posix()] = _sha256(path)
        (staging / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2))
        archive = folder / f"{PREFIX}{now.strftime('%Y%m%d-%H%M%S')}.tar.gz"
        partial = folder / f".{archive.name}.partial"
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for path in sorted(staging.iterdir()):
                tar.add(path, arcname=path.name)
        partial.replace(archive)  # whole or not at all
    return archive


def prune(folder: Path, keep: int) -> list[Path]:
    """Remove all but the newest `keep` archives of the folder; those removed."""
    archives = sorted(folder.glob(f"{PREFIX}*.tar.gz"))
    old = archives[:-keep] if keep > 0 else []
    for path in old:
        path.unlink()
    return old


def newest(folder: Path) -> Path | None:
    archives = sorted(folder.glob(f"{PREFIX}*.tar.gz"))
    return archives[-1] if archives else None


def read_manifest(archive: Path) -> dict[str, Any]:
    """An archive's manifest, after checking that every file it names is there unchanged."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.extractfile("manifest.json")
            if member is None:
                raise BackupError(f"{archive} has no manifest")
            manifest: dict[str, Any] = json.loads(member.read())
            for name, expected in manifest["files"].items():
                handle = tar.extractfile(name)
                if handle is None or hashlib.sha256(handle.read()).hexdigest() != expected:
                    raise BackupError(f"{archive}: {name} is missing or damaged")
    except (tarfile.TarError, KeyError, OSError, json.JSONDecodeError) as exc:
        raise BackupError(f"{archive} is not a readable Tiaojie backup ({exc})") from None
    return manifest


def _holds_data(url: str) -> bool:
    sqlite_file = _sqlite_path(url)
    if sqlite_file is not None:
        return sqlite_file.exists() and bool(_counts(sqlite_file)["counts"].get("disputes"))
    args, env = _pg_args(url)
    done = subprocess.run(["psql", "--tuples-only", "--no-align", "--command",
                           "SELECT count(*) FROM information_schema.tables WHERE table_name = 'disputes'", *args],
                          env=env, capture_output=True, text=True)
    return done.returncode != 0 or done.stdout.strip() != "0"


def restore(archive: Path, target: Source, *, force: bool = False) -> dict[str, Any]:
    """Put a backup back into the target's database and data folder; the manifest. The schema is
    upgraded by the caller (foundation.database.upgrade_database)."""
    manifest = read_manifest(archive)
    sqlite_file = _sqlite_path(target.database_url)
    if (manifest["kind"] == "sqlite") != (sqlite_file is not None):
        raise BackupError(f"this backup is of a {manifest['kind']} database, and the target is not")
    if not force and _holds_data(target.database_url):
        raise BackupError("the target database already holds data: restore with --force to replace it")
    with tarfile.open(archive, "r:gz") as tar:
        member = tar.extractfile("secret_key")
        secret = member.read().decode() if member is not None else ""
        stored = target.data_dir / "secret_key"
        if not force and stored.exists() and stored.read_text().strip() != secret.strip():
            raise BackupError(f"{stored} holds another secret key: restore with --force to replace it")
        with tempfile.TemporaryDirectory() as work:
            tar.extractall(work, filter="data")
            staging = Path(work)
            target.data_dir.mkdir(parents=True, exist_ok=True)
            if sqlite_file is not None:
                sqlite_file.parent.mkdir(parents=True, exist_ok=True)
                for suffix in ("-wal", "-shm"):
                    Path(f"{sqlite_file}{suffix}").unlink(missing_ok=True)
                shutil.copyfile(staging / "database.sqlite3", sqlite_file)
            else:
                args, env = _pg_args(target.database_url)
                done = subprocess.run(["pg_restore", "--clean", "--if-exists", "--no-owner", *args,
                                       str(staging / "database.pgdump")], env=env, capture_output=True, text=True)
                if done.returncode != 0:
                    raise BackupError(f"pg_restore failed: {done.stderr.strip()}")
            for name in FILES:
                if (staging / name).is_dir():
                    shutil.rmtree(target.data_dir / name, ignore_errors=True)
                    shutil.copytree(staging / name, target.data_dir / name)
            descriptor = os.open(stored, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secret)
    return manifest


def describe(manifest: dict[str, Any]) -> str:
    """A manifest in one line for people."""
    counts = ", ".join(f"{n} {table}" for table, n in manifest.get("counts", {}).items())
    return f"{manifest['kind']} backup of {manifest['created_at']} (schema {manifest.get('revision')}): {counts or 'no counts'}"

