"""Cluster: rooms and forwarded streams per node as nodes are added, and failover, on real nodes and PostgreSQL.

    .venv/bin/python bench/cluster.py [--nodes 3] [--rooms-per-node 2] [--window 8] [--loss 0.01] [--failovers 2]

For each cluster size N = 1 .. --nodes, in one run: a fresh database on a PostgreSQL server the
script starts (Debian's packages, as the tests do), N `tiaojie serve` processes (media in the
web process), and N x --rooms-per-node sessions of 5 (a host and four experts). Every
participant's WebSocket enters through the nodes in turn, as a proxy's round robin would, and
follows `moved` to the room's node; the rooms are placed by the nodes themselves. The clients are
bench/media_capacity.py's (pre-encoded simulcast VP8 and Opus, receiver reports, NACKs for 1%
loss, PLIs), one process per room.

Printed per N: for each node, the rooms and forwarded streams its own heartbeat reports and its
CPU over the window (read from /proc); for the cluster, the video streams delivered (publisher to
subscriber, times the share of frames that arrived), and the ratio of the delivered streams and of
the rooms to the one-node run.

This machine has 2 cores: every node is pinned to core 0 and the clients to core 1, so N nodes
share one core here, and what grows with N is the offered load on that core, not the hardware.
The ratio shows that placement spreads the rooms and that the nodes add nothing per stream; the
capacity of N machines is N times what one node carries (bench/media_capacity.py).

Then --failovers times, on three fresh nodes with the default settings (a node is dead after
10 s without a heartbeat): a room of three (host, party, expert: aiortc clients that reconnect
through the other nodes as soon as their socket closes, as the room page does) on node X; kill -9
of X, and the seconds until all three see each other again on another node; then SIGTERM of
that node (systemd's stop), timed the same way. And the split-room check: a node cut off from
PostgreSQL (a TCP proxy between them) while its clients stay connected: the seconds until it
stops hosting, whether the room was placed on another node before that, and the room back on
another node with a late joiner who sees everyone.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.media_capacity import (  # noqa: E402
    CLIENT_CORE,
    FPS,
    SERVER_CORE,
    BenchClient,
    _pin,
    encode_media,
    measure_rooms,
    run_room,
)
from tests.cluster.conftest import wait_healthy  # noqa: E402

ROOM_SIZE = 5
TIAOJIE = str(Path(sys.executable).with_name("tiaojie"))
PASSWORD = "bench password 1"


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- client process (one room)

def room_main(entries: list[str], session_id: int, tokens: list[str], first_entry: int, media: dict[str, list[Any]],
              loss: float, control: Any, results: Any) -> None:
    _pin(CLIENT_CORE)
    asyncio.run(run_clients(entries, session_id, tokens, first_entry, media, loss, control, results))


async def _join(entry: str, session_id: int, token: str) -> Any:
    """A signaling socket admitted to the room, on the room's node (following `moved`)."""
    import websockets

    url = f"ws{entry.removeprefix('http')}/ws/rooms/{session_id}"
    for _ in range(3):
        socket = await websockets.connect(url, max_size=2**22)
        await socket.send(json.dumps({"type": "join", "token": token}))
        first = json.loads(await socket.recv())
        if first["type"] != "moved":
            return socket
        await socket.close()
        url = first["url"]
    raise RuntimeError("moved too often")


async def run_clients(entries: list[str], session_id: int, tokens: list[str], first_entry: int,
                      media: dict[str, list[Any]], loss: float, control: Any, results: Any) -> None:
    """A room's clients, each entering through the entries in turn, publishing and measured by
    the driver (bench/media_capacity.py run_room)."""
    clients: dict[str, BenchClient] = {}
    readers = []
    for n, token in enumerate(tokens):
        socket = await _join(entries[(first_entry + n) % len(entries)], session_id, token)
        joined = json.loads(await socket.recv())
        while joined["type"] != "joined":
            joined = json.loads(await socket.recv())
        client = BenchClient(joined["peer_id"], media, simulcast=True, loss=loss)
        clients[client.name] = client
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def read(socket: Any = socket, client: BenchClient = client, answer: asyncio.Future[str] = answer) -> None:
            async for raw in socket:
                message = json.loads(raw)
                if message["type"] == "answer" and not answer.done():
                    answer.set_result(message["sdp"])
                elif message["type"] == "slots":
                    client.slot_owner = message["slots"]

        readers.append((socket, asyncio.create_task(read())))
        await socket.send(json.dumps({"type": "offer", "sdp": await client.offer()}))
        await client.accept(await asyncio.wait_for(answer, 30))
    for client in clients.values():
        client.peers = clients
    await run_room(clients, str(session_id), control, results)
    for socket, task in readers:
        task.cancel()
        await socket.close()


# ---------------------------------------------------------------- driver

def book_rooms(url: str, rooms: int) -> list[dict[str, Any]]:
    """Sessions starting in two minutes (rooms open), each with a host and four experts, booked
    through a node by the staff account staff1."""
    import httpx

    staff = httpx.Client(base_url=url, timeout=30)
    csrf = staff.get("/api/auth/csrf").json()["csrf_token"]
    login = staff.post("/api/auth/login", json={"username": "staff1", "password": PASSWORD}, headers={"X-CSRF-Token": csrf})
    staff.headers["X-CSRF-Token"] = login.json()["csrf_token"]
    start = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=2)
    sessions = []
    for n in range(rooms):
        experts = [staff.post("/api/experts", json={"name": f"专家{n}-{k}", "role": "lawyer",
                                                     "email": f"{uuid.uuid4().hex[:10]}@e.cn"}).json()["id"] for k in range(4)]
        dispute = staff.post("/api/disputes", json={"title": f"纠纷{n}", "dispute_type": "neighbour",
                                                     "parties": [{"name": "张建军", "side": "applicant"}]}).json()
        booked = staff.post("/api/sessions", json={
            "dispute_id": dispute["id"], "start": start.isoformat(), "end": (start + dt.timedelta(hours=1)).isoformat(),
            "experts": [{"expert_id": e} for e in experts], "override_availability": True})
        booked.raise_for_status()
        sessions.append(booked.json())
    return sessions


def room_tokens(session: dict[str, Any]) -> list[str]:
    """The join tokens of a booked session's host and experts."""
    tokens = [p["join_url"].rsplit("/", 1)[1] for p in session["participants"] if p["kind"] in ("host", "expert")]
    assert len(tokens) == ROOM_SIZE
    return tokens


class Cluster:
    """N nodes on a fresh database, with booked sessions."""

    def __init__(self, server_url: str, folder: Path, count: int) -> None:
        from tests.postgres import fresh_database

        self._database = fresh_database(server_url)
        self.url = self._database.__enter__()
        self.folder = folder
        self.count = count
        self.nodes: list[tuple[str, str, subprocess.Popen[bytes]]] = []

    def start(self) -> None:
        from foundation.database import upgrade_database
        from tests.conftest import free_port

        upgrade_database(self.url)
        env = {**os.environ, "TIAOJIE_SECRET_KEY": "bench-cluster-secret-of-at-least-32-characters", "TIAOJIE_DATA_DIR": str(self.folder / "data"),
               "TIAOJIE_BOOKING_NOTICE_MIN": "0"}
        subprocess.run([TIAOJIE, "create-staff", "staff1", "--password", PASSWORD, "--database-url", self.url],
                       env=env, check=True, capture_output=True)
        for n in range(self.count):
            name, port = "abcdefgh"[n], free_port()
            url = f"http://127.0.0.1:{port}"
            log = (self.folder / f"node-{name}.log").open("wb")
            process = subprocess.Popen(
                [TIAOJIE, "serve", "--port", str(port), "--media-workers", "0", "--database-url", self.url],
                env={**env, "TIAOJIE_NODE_ID": name, "TIAOJIE_NODE_URL": url, "TIAOJIE_BASE_URL": url},
                stdout=log, stderr=subprocess.STDOUT, preexec_fn=lambda: _pin(SERVER_CORE),
            )
            self.nodes.append((name, url, process))
        for name, url, process in self.nodes:
            wait_healthy(url, process, f"node {name}")

    def book(self, rooms: int) -> list[dict[str, Any]]:
        """Sessions starting in two minutes (rooms open), each with a host and four experts."""
        return book_rooms(self.nodes[0][1], rooms)

    def node_rows(self) -> dict[str, dict[str, Any]]:
        import psycopg

        with psycopg.connect(self.url.replace("postgresql+asyncpg://", "postgresql://")) as db:
            return {row[0]: {"rooms": len(row[1]), "streams": row[2], "participants": row[3]}
                    for row in db.execute("SELECT id, rooms, streams, participants FROM nodes")}

    def stop(self) -> None:
        for _, _, process in self.nodes:
            process.terminate()
        for _, _, process in self.nodes:
            process.wait(30)
        self._database.__exit__(None, None, None)


async def run_size(server_url: str, count: int, rooms_per_node: int, window_s: float, media: Any, loss: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        cluster = Cluster(server_url, Path(folder), count)
        try:
            cluster.start()
            return await _measure(cluster, count * rooms_per_node, window_s, media, loss)
        finally:
            cluster.stop()


async def _measure(cluster: Cluster, rooms: int, window_s: float, media: Any, loss: float) -> dict[str, Any]:
    sessions = cluster.book(rooms)
    entries = [url for _, url, _ in cluster.nodes]
    args = []
    for n, session in enumerate(sessions):
        args.append((entries, session["id"], room_tokens(session), n, media, loss))

    rows: dict[str, dict[str, Any]] = {}

    async def read_server(starting: bool) -> dict[str, float]:
        cpu = {name: cpu_seconds(process.pid) for name, _, process in cluster.nodes}
        if not starting:  # what the nodes' heartbeats said during the window
            rows.update(cluster.node_rows())
        return cpu

    before, after, outcomes = await measure_rooms(room_main, args, window_s, read_server)
    expected = sum(o[2] for o in outcomes)
    received = sum(o[3] for o in outcomes)
    lost = 1 - received / expected if expected else 1.0
    return {
        "nodes": {name: {**rows.get(name, {}), "core_share": (after[name] - before[name]) / window_s} for name in before},
        "rooms": rooms, "streams": rooms * ROOM_SIZE * (ROOM_SIZE - 1),
        "delivered": rooms * ROOM_SIZE * (ROOM_SIZE - 1) * (1 - lost), "loss": lost,
        "clients_core_share": sum(o[5] for o in outcomes) / window_s,
    }


# ---------------------------------------------------------------- failover

@contextlib.contextmanager
def test_nodes(server_url: str, folder: Path) -> Iterator[Any]:
    """tests/cluster's nodes (started on demand) on a fresh database with the schema and staff1."""
    from tests.cluster.conftest import nodes_on, with_staff

    with nodes_on(server_url, folder, TIAOJIE_SECRET_KEY="bench-failover-secret-of-at-least-32-characters") as cluster:
        yield with_staff(cluster)


async def enter_room(entries: list[str], session: dict[str, Any], kinds: list[str]) -> list[Any]:
    """These participants join through the entries (following `moved`), connect their media, the
    party is admitted if it waits in the lobby, and everyone sees everyone. A socket closed on
    the way (a stopping node sends its people away) starts them again, as the room page does."""
    import websockets

    from tests.cluster.test_rooms_across_nodes import enter, everyone_sees_everyone
    from tests.conftest import token_of
    from tests.signaling.test_forwarding import wait_until
    from tests.signaling.test_ws import admit

    while True:
        clients = list(await asyncio.gather(*(enter(entries, session["id"], n, token_of(session, kind))
                                              for n, kind in enumerate(kinds))))
        try:
            for client in clients:
                await client.connect_media()
            waiting = [c for c, kind in zip(clients, kinds) if kind == "party"
                       and not any(m["type"] == "joined" and m["admitted"] for m in c.messages)]
            if waiting:
                await admit(clients[kinds.index("host")], *waiting)
            await wait_until(lambda room=clients: everyone_sees_everyone(room) or any(c.socket.close_code for c in room), 60)
            if everyone_sees_everyone(clients):
                return clients
        except websockets.ConnectionClosed:
            pass
        for client in clients:
            await client.close()


async def failover(server_url: str, folder: Path) -> dict[str, float]:
    """kill -9 of a live room's node, then SIGTERM of the next: seconds until media for all."""
    from tests.cluster.conftest import staff_client
    from tests.cluster.test_rooms_across_nodes import book, room_node

    with test_nodes(server_url, folder) as cluster:
        for name in ("a", "b", "c"):
            cluster.start(name)
        staff = staff_client(cluster.node("a"))
        other, session = book(staff, "邻里噪音"), book(staff, "宠物狗纠纷")
        # A room on a first, so that the measured one goes to another node than the entry.
        clients = await enter_room([cluster.node("a").url], other, ["host"])
        room = await enter_room([cluster.node("a").url], session, ["host", "party", "expert"])
        times: dict[str, float] = {}
        for how in ("kill -9", "SIGTERM"):
            node = cluster.node(room_node(cluster, session["id"]))
            started = time.monotonic()
            if how == "kill -9":
                node.kill()
            else:
                node.process.terminate()
            for client in room:
                await client.close()
            room = await enter_room([n.url for n in cluster.nodes if n is not node], session, ["host", "party", "expert"])
            times[how] = time.monotonic() - started
            node.stop()
        for client in [*clients, *room]:
            await client.close()
        return times


async def split_room(server_url: str, folder: Path) -> dict[str, Any]:
    """A node cut off from PostgreSQL with its clients connected: when it stops hosting, whether
    the room was placed on another node before that, and whether a late joiner sees everyone."""
    from urllib.parse import urlsplit

    from tests.cluster.conftest import TcpProxy, staff_client
    from tests.cluster.test_rooms_across_nodes import book, room_node
    from tests.postgres import plain_url

    with test_nodes(server_url, folder) as cluster:
        database = urlsplit(plain_url(cluster.database_url))
        proxy = TcpProxy(database.hostname or "127.0.0.1", database.port or 5432)
        a = cluster.start("a").url
        cluster.start("b", cluster.database_url.replace(f":{database.port}/", f":{proxy.port}/"))
        staff = staff_client(cluster.node("a"))
        other, session = book(staff, "邻里噪音"), book(staff, "宠物狗纠纷")
        clients = await enter_room([a], other, ["host"])
        room = await enter_room([a], session, ["host", "expert"])
        on_b = room_node(cluster, session["id"]) == "b"
        proxy.cut()
        cut = time.monotonic()
        placed_elsewhere = False
        while not all(any(e["code"] == "rejoin" for e in c.errors) for c in room):
            placed_elsewhere |= room_node(cluster, session["id"]) != "b"
            await asyncio.sleep(0.05)
        fenced = time.monotonic() - cut
        for client in room:
            await client.close()
        room = await enter_room([a], session, ["host", "expert", "party"])  # the party is the late joiner
        result = {"started_on_b": on_b, "fenced_s": fenced, "placed_elsewhere_before": placed_elsewhere,
                  "back_s": time.monotonic() - cut, "now_on": room_node(cluster, session["id"])}
        for client in [*clients, *room]:
            await client.close()
        return result


def show(result: dict[str, Any], base: dict[str, Any] | None) -> None:
    count = len(result["nodes"])
    print(f"{count} node(s), {result['rooms']} rooms of {ROOM_SIZE}: {result['delivered']:.1f} of {result['streams']} video "
          f"streams delivered, loss {100 * result['loss']:.2f}%, clients {100 * result['clients_core_share']:.0f}% of core {CLIENT_CORE}",
          flush=True)
    for name, node in sorted(result["nodes"].items()):
        print(f"    node {name}: {node.get('rooms', '?')} rooms, {node.get('participants', '?')} participants, "
              f"{node.get('streams', '?')} streams forwarded (audio and video), {100 * node['core_share']:.1f}% of core {SERVER_CORE}")
    if base is not None:
        cpu = sum(n["core_share"] for n in result["nodes"].values())
        base_cpu = sum(n["core_share"] for n in base["nodes"].values())
        print(f"    ratio to 1 node: rooms x{result['rooms'] / base['rooms']:.2f}, delivered streams "
              f"x{result['delivered'] / base['delivered']:.2f}, server CPU x{cpu / base_cpu:.2f}", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--rooms-per-node", type=int, default=2)
    parser.add_argument("--window", type=float, default=8.0)
    parser.add_argument("--loss", type=float, default=0.01)
    parser.add_argument("--failovers", type=int, default=2)
    args = parser.parse_args()
    from tests.postgres import postgres_server

    media = encode_media()
    print(f"{os.cpu_count()} cores: nodes on core {SERVER_CORE}, clients on core {CLIENT_CORE}; "
          f"{args.rooms_per_node} rooms of {ROOM_SIZE} per node, simulcast, {FPS} fps, clients lose {100 * args.loss:.0f}%",
          flush=True)
    with postgres_server() as server_url:
        base = None
        for count in range(1, args.nodes + 1):
            result = await run_size(server_url, count, args.rooms_per_node, args.window, media, args.loss)
            show(result, base)
            base = base or result
        for run in range(args.failovers):
            with tempfile.TemporaryDirectory() as folder:
                times = await failover(server_url, Path(folder))
            print(f"failover {run + 1} (3 nodes, default 10 s dead time, a room of 3): media for all again "
                  f"{times['kill -9']:.1f} s after kill -9 of its node, {times['SIGTERM']:.1f} s after SIGTERM of the next",
                  flush=True)
        with tempfile.TemporaryDirectory() as folder:
            split = await split_room(server_url, Path(folder))
        print(f"split-room check: node b{'' if split['started_on_b'] else ' (NOT the room node)'}, cut off from PostgreSQL, "
              f"stopped hosting {split['fenced_s']:.1f} s later (dead after 10 s); room placed elsewhere before that: "
              f"{'YES' if split['placed_elsewhere_before'] else 'no'}; back on node {split['now_on']} with a late joiner "
              f"seeing everyone {split['back_s']:.1f} s after the cut", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
