"""What the browser benchmarks share: the server as shipped (`tiaojie serve` with its media
workers, a process of its own on the embedded SQLite default) and a CPU hog beside it."""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from tests.cluster.conftest import wait_healthy

TIAOJIE = str(Path(sys.executable).with_name("tiaojie"))
STAFF, PASSWORD = "bench", "bench-password-1"
SECRET = "bench-secret-of-at-least-thirty-two-characters"


@contextlib.contextmanager
def cpu_hog(workers: int) -> Iterator[None]:
    """stress-ng with this many CPU workers beside the server (nothing when 0)."""
    if workers <= 0:
        yield
        return
    if shutil.which("stress-ng") is None:
        raise SystemExit("--cpu-load needs stress-ng (apt-get install stress-ng)")
    hog = subprocess.Popen(["stress-ng", "--cpu", str(workers), "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        yield
    finally:
        hog.terminate()
        hog.wait(10)


class Served(NamedTuple):
    url: str  # its local address
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def node(folder: Path, port: int, base_url: str, host: str = "127.0.0.1", media_workers: int | None = None,
         cores: list[int] | None = None, staff: tuple[str, str] = (STAFF, PASSWORD)) -> Iterator[Served]:
    """`tiaojie serve` in a fresh data folder, with a staff account (user name, password), pinned
    to these cores if given. Media workers: the default (one per core) unless given."""
    env = {**os.environ, "TIAOJIE_DATA_DIR": str(folder), "TIAOJIE_SECRET_KEY": SECRET,
           "TIAOJIE_BOOKING_NOTICE_MIN": "0", "TIAOJIE_BASE_URL": base_url}
    subprocess.run([TIAOJIE, "create-staff", staff[0], "--password", staff[1]], env=env, check=True, capture_output=True)
    workers = [] if media_workers is None else ["--media-workers", str(media_workers)]
    log_path = folder / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen([TIAOJIE, "serve", "--host", host, "--port", str(port), *workers],
                                  env=env, stdout=log, stderr=subprocess.STDOUT,
                                  preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, server, "tiaojie serve", log_path.read_text)
            yield Served(url, server)
        finally:
            server.terminate()
            server.wait(30)


def book_session(url: str, expert: str, parties: list[str]) -> dict[str, Any]:
    """A session starting in five minutes (its room open) with one expert and these parties,
    booked by STAFF through the API; the answer carries everyone's invite link."""
    with httpx.Client(base_url=url, timeout=30) as staff:
        csrf = staff.get("/api/auth/csrf").json()["csrf_token"]
        login = staff.post("/api/auth/login", json={"username": STAFF, "password": PASSWORD}, headers={"X-CSRF-Token": csrf})
        staff.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        expert_id = staff.post("/api/experts", json={"name": expert, "role": "lawyer", "email": "w@e.cn"}).json()["id"]
        sides = ["applicant", "respondent"]
        dispute = staff.post("/api/disputes", json={
            "title": "宠物狗纠纷", "dispute_type": "animals",
            "parties": [{"name": name, "side": sides[n % 2]} for n, name in enumerate(parties)]}).json()
        start = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)
        booked = staff.post("/api/sessions", json={
            "dispute_id": dispute["id"], "start": start.isoformat(), "end": (start + dt.timedelta(hours=1)).isoformat(),
            "experts": [{"expert_id": expert_id}], "override_availability": True})
        booked.raise_for_status()
        return dict(booked.json())
