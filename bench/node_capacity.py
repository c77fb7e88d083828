"""Node capacity: delivered streams of one `tiaojie serve` node against its number of media workers.

    .venv/bin/python bench/node_capacity.py [--rooms-per-worker 6] [--window 8] [--loss 0.01]

One run, one node at a time on the embedded SQLite database: `tiaojie serve --media-workers W`
for W = 1, 2, 4, ... up to the cores given to the server, the node (its web process and its
workers) pinned to W cores, and W x --rooms-per-worker rooms of 5 (a host and four experts),
booked through the API and joined through the real WebSocket path with their invite tokens. The
clients are bench/media_capacity.py's (pre-encoded simulcast VP8 and Opus, receiver reports,
NACKs for the loss they see, PLIs), one process per room, pinned to the cores the server does not
have. The first half of the machine's cores (at least one) serve, the rest run clients; with a
single server core the run also puts two workers on it, to show what a second worker costs.

Printed per W: the video streams delivered (publisher to subscriber, times the share of frames
that arrived), frame loss, the node's CPU (web process and workers, from /proc) in cores, the
streams delivered per core used, the clients' cores used, and the scaling efficiency: streams
per core used at W against W = 1 (100% is linear). A level whose clients' cores are saturated
measures the load generator, and says so.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cluster import PASSWORD, book_rooms, cpu_seconds, room_tokens, run_clients  # noqa: E402
from bench.media_capacity import CLIENTS_SATURATED, encode_media, measure_rooms  # noqa: E402
from bench.shipped import node  # noqa: E402

ROOM_SIZE = 5


def split_cores() -> tuple[list[int], list[int]]:
    """The cores for the server and those for the clients: half each, at least one each."""
    cores = sorted(os.sched_getaffinity(0))
    serving = max(1, len(cores) // 2)
    return cores[:serving], cores[serving:] or cores[:1]


def worker_counts(server_cores: int) -> list[int]:
    """1, 2, 4, ... up to the server's cores (and 2 on a single core)."""
    counts = [1]
    while counts[-1] * 2 <= max(2, server_cores):
        counts.append(counts[-1] * 2)
    return counts


def node_cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU so far of the web process and of its children (the media workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return cpu_seconds(pid), sum(cpu_seconds(int(child)) for child in children)


def room_main(cores: list[int], entry: str, session_id: int, tokens: list[str], media: dict[str, list[Any]],
              loss: float, control: Any, results: Any) -> None:
    os.sched_setaffinity(0, cores)
    asyncio.run(run_clients([entry], session_id, tokens, 0, media, loss, control, results))


async def measure(workers: int, cores: list[int], client_cores: list[int], rooms: int, window_s: float,
                  media: Any, loss: float) -> dict[str, Any]:
    from tests.conftest import free_port

    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        with node(Path(folder), port, f"http://127.0.0.1:{port}", media_workers=workers, cores=cores,
                  staff=("staff1", PASSWORD)) as (url, server):
            sessions = book_rooms(url, rooms)
            args = [(client_cores, url, s["id"], room_tokens(s), media, loss) for s in sessions]

            async def read_node(starting: bool) -> tuple[float, float]:
                return node_cpu_seconds(server.pid)

            before, after, outcomes = await measure_rooms(room_main, args, window_s, read_node)
    expected = sum(o[2] for o in outcomes)
    lost = 1 - sum(o[3] for o in outcomes) / expected if expected else 1.0
    streams = rooms * ROOM_SIZE * (ROOM_SIZE - 1)
    main_s, workers_s = after[0] - before[0], after[1] - before[1]
    delivered = streams * (1 - lost)
    node_cores = (main_s + workers_s) / window_s
    return {"workers": workers, "cores": len(cores), "rooms": rooms, "streams": streams,
            "delivered": delivered, "loss": lost, "node_cores": node_cores,
            "per_core": delivered / max(node_cores, 1e-9),
            "main_ms": 1000 * main_s / window_s / max(delivered, 1e-9),  # CPU-ms per second per delivered stream
            "workers_ms": 1000 * workers_s / window_s / max(delivered, 1e-9),
            "client_cores": sum(o[5] for o in outcomes) / window_s}


def saturated_clients(r: dict[str, Any], client_cores: int) -> bool:
    """Whether the clients' cores were saturated (the level measures the load generator)."""
    return bool(r["client_cores"] >= CLIENTS_SATURATED * client_cores)


def show(r: dict[str, Any], base: dict[str, Any] | None, client_cores: int) -> None:
    shared = " (sharing 1 core)" if r["workers"] > r["cores"] else ""
    efficiency = f", scaling {r['per_core'] / base['per_core']:.0%} of linear" if base else ""
    saturated = saturated_clients(r, client_cores)
    print(f"{r['workers']} worker(s) on {r['cores']} core(s){shared}, {r['rooms']} rooms: "
          f"{r['delivered']:.1f} of {r['streams']} video streams delivered, loss {100 * r['loss']:.2f}%, "
          f"node {r['node_cores']:.2f} cores, {r['per_core']:.0f} streams per core used{efficiency}; "
          f"clients {r['client_cores']:.2f} of {client_cores} cores" + (" (saturated: the load generator's figure)" if saturated else ""),
          flush=True)
    share = r["main_ms"] / (r["main_ms"] + r["workers_ms"])
    print(f"  per delivered stream: web process {r['main_ms']:.2f} CPU-ms/s, media workers {r['workers_ms']:.2f} CPU-ms/s; "
          f"the web process's share (the serial fraction) {share:.1%}", flush=True)


def projection(r: dict[str, Any]) -> str:
    """Streams per node on more cores, from one measured level (Amdahl): n cores carry n / (the
    whole cost per stream), but the one web process carries at most 1 / (its cost per stream),
    and one core goes to it."""
    main, workers = r["main_ms"] / 1000, r["workers_ms"] / 1000
    figures = []
    for n in (4, 8, 16):
        bound = min(n / (main + workers), (n - 1) / workers if workers else float("inf"), 1 / main if main else float("inf"))
        figures.append(f"{n} cores {bound:.0f}")
    return (f"projection, not measured (from {r['workers']} worker(s); the web process's bound {1 / main:.0f} streams): "
            + ", ".join(figures) + " streams per node")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms-per-worker", type=int, default=6)
    parser.add_argument("--window", type=float, default=8.0)
    parser.add_argument("--loss", type=float, default=0.01)
    args = parser.parse_args()
    server_cores, client_cores = split_cores()
    media = encode_media()
    print(f"{os.cpu_count()} cores: the node on {server_cores}, clients on {client_cores}; "
          f"{args.rooms_per_worker} rooms of {ROOM_SIZE} per worker, simulcast, clients lose {100 * args.loss:.0f}%", flush=True)
    base = measured = None
    for workers in worker_counts(len(server_cores)):
        cores = server_cores[:workers] if workers <= len(server_cores) else server_cores
        result = await measure(workers, cores, client_cores, workers * args.rooms_per_worker, args.window, media, args.loss)
        show(result, base, len(client_cores))
        base = base or result
        if not saturated_clients(result, len(client_cores)):
            measured = result
    print(projection(measured) if measured else "no level left the clients' cores free: no projection", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
