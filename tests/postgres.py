"""A throwaway PostgreSQL server from Debian's packages (postgresql-15), for the cluster tests.

`initdb` refuses to run as root, so as root the server runs as the `postgres` user the package
creates. TIAOJIE_TEST_POSTGRES (tests/conftest.py) names an existing server instead.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

from tests.conftest import POSTGRES, free_port


def _bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
    return str(found[-1])


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class Server:
    """A PostgreSQL server on a data folder of its own, which a test may stop and start again
    (on the same port: clients see a restart)."""

    def __init__(self, base: Path) -> None:
        self.data = base / "data"
        self.socket_dir = base
        self.port = free_port()
        self.url = f"postgresql://tiaojie@127.0.0.1:{self.port}/postgres"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it takes connections."""
        self._process = subprocess.Popen(_as_postgres([
            _bin("postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.socket_dir),
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=300",
        ]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                psycopg.connect(self.url, connect_timeout=1).close()
                return
            except psycopg.OperationalError:
                if self._process.poll() is not None:
                    raise RuntimeError("PostgreSQL did not start") from None
                time.sleep(0.1)
        raise RuntimeError("PostgreSQL did not take connections")

    def stop(self) -> None:
        """Stop the server (fast shutdown: its connections are closed) and wait until it is gone."""
        if self._process is not None:
            subprocess.run(_as_postgres([_bin("pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w"]),
                           capture_output=True, timeout=60)
            self._process.wait(30)
            self._process = None


@contextlib.contextmanager
def own_postgres_server() -> Iterator[Server]:
    """A fresh server of this test's own, running for the duration."""
    base = Path(tempfile.mkdtemp(prefix="tiaojie-pg-"))
    base.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    server = Server(base)
    subprocess.run(_as_postgres([_bin("initdb"), "-D", str(server.data), "-A", "trust", "-U", "tiaojie",
                                 "-E", "UTF8", "--locale", "C"]), check=True, capture_output=True)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A running server for the duration; yields the URL of its `postgres` database."""
    if POSTGRES:
        yield POSTGRES
        return
    with own_postgres_server() as server:
        yield server.url


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new empty database on the server; yields its SQLAlchemy (asyncpg) URL."""
    name = f"tiaojie_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server_url.rsplit('/', 1)[0]}/{name}".replace("postgresql://", "postgresql+asyncpg://")
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def plain_url(url: str) -> str:
    """The libpq URL of a SQLAlchemy one (for psycopg in the tests)."""
    return url.replace("postgresql+asyncpg://", "postgresql://")
