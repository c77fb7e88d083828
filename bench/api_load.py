"""Benchmark: do reads stall behind bookings? One run, two phases on the same server.

Starts `tiaojie serve` (SQLite, the demo data, no media workers) pinned to core 0, and drives it
from this process pinned to core 1, so the load generator does not take the server's CPU:

1. reads alone: READERS clients loop on `GET /api/experts` for SECONDS;
2. reads with bookings: the same readers, plus BOOKERS clients each booking sessions one after
   another (`POST /api/sessions`, a real write transaction with participants, outbox and
   audit rows) for SECONDS.

The two phases alternate twice (1, 2, 1, 2) after a warm-up, and each is reported over both.

Prints reads per second and p50/p99 latency of each phase, the bookings made, the ratio of
the second phase's read throughput to the first's and the share of its core the server used in
each (when it is full in both, what the bookings take the reads lose). Then the server's CPU per request, from its
process's CPU time (/proc): per read over the reads-alone phases, and per booking over a phase
of BOOKERS bookers alone (each booking's work after the response included: its invitations
delivered from the outbox, its jobs added; the clients' logins before, not counted).

    .venv/bin/python bench/api_load.py [--seconds 8] [--readers 16] [--bookers 8]
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench password 1"


def _start_server(data_dir: str, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "TIAOJIE_DATA_DIR": data_dir}
    tiaojie = [sys.executable, "-c", "from server.cli import main; main()"]
    subprocess.run([*tiaojie, "demo"], env=env, check=True, capture_output=True, cwd=ROOT)
    subprocess.run([*tiaojie, "create-staff", "bench", "--admin", "--password", PASSWORD], env=env, check=True,
                   capture_output=True, cwd=ROOT)
    server = subprocess.Popen([*tiaojie, "serve", "--port", str(port), "--media-workers", "0"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(server.pid, {0})
        os.sched_setaffinity(0, {1})
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("the server did not start")
        time.sleep(0.2)


async def _client(base: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base, timeout=60, limits=httpx.Limits(max_connections=100))
    token = (await client.get("/api/auth/csrf")).json()["csrf_token"]
    login = await client.post("/api/auth/login", json={"username": "bench", "password": PASSWORD},
                              headers={"X-CSRF-Token": token})
    client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
    return client


async def _reader(client: httpx.AsyncClient, until: float, latencies: list[float]) -> None:
    while time.perf_counter() < until:
        started = time.perf_counter()
        response = await client.get("/api/experts")
        assert response.status_code == 200, response.text
        latencies.append(time.perf_counter() - started)


async def _booker(client: httpx.AsyncClient, n: int, expert_id: int, dispute_id: int, until: float, made: list[int],
                  day: int) -> None:
    # Each booker books its own expert at ever later times from `day` on: every booking
    # succeeds, and each is a full write transaction holding SQLite's write lock.
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(days=day, hours=n)
    while time.perf_counter() < until:
        body = {"dispute_id": dispute_id, "start": start.isoformat(), "end": (start + dt.timedelta(minutes=30)).isoformat(),
                "experts": [{"expert_id": expert_id}], "override_availability": True}
        response = await client.post("/api/sessions", json=body)
        assert response.status_code == 201, response.text
        made.append(1)
        start += dt.timedelta(minutes=50)  # 30-minute sessions, more than the 15-minute gap apart


def _cpu_s(pid: int) -> float:
    """A process's CPU time so far (user and system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _report(name: str, latencies: list[float], seconds: float) -> float:
    rate = len(latencies) / seconds
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"  {name:<26} {rate:8.1f} reads/s   p50 {statistics.median(ordered) * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms")
    return rate


async def _phase(base: str, readers: int, bookers: int, seconds: float, targets: list[tuple[int, int]],
                 day: int = 3, clients: list[httpx.AsyncClient] | None = None) -> tuple[list[float], int]:
    clients = clients or [await _client(base) for _ in range(readers + bookers)]
    latencies: list[float] = []
    made: list[int] = []
    until = time.perf_counter() + seconds
    tasks = [_reader(c, until, latencies) for c in clients[:readers]]
    tasks += [_booker(c, n, *targets[n], until, made, day) for n, c in enumerate(clients[readers:])]
    await asyncio.gather(*tasks)
    for client in clients:
        await client.aclose()
    return latencies, len(made)


async def run(base: str, server_pid: int, seconds: float, readers: int, bookers: int) -> None:
    admin = await _client(base)
    experts = (await admin.get("/api/experts")).json()
    disputes = (await admin.get("/api/disputes")).json()
    await admin.aclose()
    targets = [(experts[n % len(experts)]["id"], disputes[0]["id"]) for n in range(bookers)]
    await _phase(base, readers, 0, 3.0, targets)  # warm up
    # Alternate the phases twice, so that drift on a shared machine hits both alike.
    alone: list[float] = []
    mixed: list[float] = []
    booked = 0
    read_cpu_s = mixed_cpu_s = mixed_wall_s = read_wall_s = 0.0
    for round_ in range(2):
        # The clients log in first: a login's password check (argon2, slow on purpose) is not a read's.
        readers_in = [await _client(base) for _ in range(readers)]
        before, started = _cpu_s(server_pid), time.perf_counter()
        alone += (await _phase(base, readers, 0, seconds, targets, clients=readers_in))[0]
        read_cpu_s += _cpu_s(server_pid) - before
        read_wall_s += time.perf_counter() - started
        before, started = _cpu_s(server_pid), time.perf_counter()
        latencies, made = await _phase(base, readers, bookers, seconds, targets, day=3 + 30 * round_)
        mixed_cpu_s += _cpu_s(server_pid) - before
        mixed_wall_s += time.perf_counter() - started
        mixed += latencies
        booked += made
    logged_in = [await _client(base) for _ in range(bookers)]
    await asyncio.sleep(2)  # the outbox delivered, before the bookings-alone phase
    before = _cpu_s(server_pid)
    _, booked_alone = await _phase(base, 0, bookers, seconds, targets, day=3 + 60, clients=logged_in)
    await asyncio.sleep(2)  # and this phase's invitations delivered, counted with it
    booking_cpu_s = _cpu_s(server_pid) - before
    print(f"GET /api/experts, {readers} concurrent readers, 2 x {seconds:g} s per phase (alternating), SQLite,"
          " server on core 0, load on core 1")
    base_rate = _report("reads alone", alone, 2 * seconds)
    mixed_rate = _report(f"reads + {bookers} bookers", mixed, 2 * seconds)
    print(f"  bookings made meanwhile: {booked} ({booked / (2 * seconds):.1f}/s)")
    print(f"  reads with bookings keep {mixed_rate / base_rate:.0%} of the reads-alone throughput"
          f" (the server used {read_cpu_s / read_wall_s:.0%} of its core for reads alone,"
          f" {mixed_cpu_s / mixed_wall_s:.0%} with the bookings)")
    print(f"server CPU per read {read_cpu_s / len(alone) * 1000:.2f} ms ({len(alone)} reads);"
          f" per booking {booking_cpu_s / booked_alone * 1000:.2f} ms ({booked_alone} bookings by {bookers} bookers alone,"
          " their outbox deliveries and jobs included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--readers", type=int, default=16)
    parser.add_argument("--bookers", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = _start_server(data_dir, port)
        try:
            asyncio.run(run(f"http://127.0.0.1:{port}", server.pid, args.seconds, args.readers, args.bookers))
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
