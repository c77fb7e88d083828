"""Rooms across nodes: real aiortc clients join one room through different nodes and end up on
the room's node; a node killed mid-mediation has its room come back on another, by itself."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import ssl
import subprocess
import time
import uuid
from typing import Any

import httpx
import psycopg
import websockets

from tests.cluster.conftest import TIAOJIE, Cluster, staff_client
from tests.conftest import token_of
from tests.postgres import plain_url
from tests.signaling.test_forwarding import wait_until
from tests.signaling.test_ws import WsClient, admit

DEAD_S = "3"


def book(client: httpx.Client, title: str, experts: int = 1) -> dict[str, Any]:
    """A session starting in two minutes (its room is open) with a host, experts and a party."""
    ids = [client.post("/api/experts", json={"name": f"{title}专家{n}", "role": "lawyer", "email": f"{uuid.uuid4().hex[:8]}@e.cn"}).json()["id"]
           for n in range(experts)]
    dispute = client.post("/api/disputes", json={
        "title": title, "dispute_type": "neighbour", "parties": [{"name": "张建军", "side": "applicant"}]}).json()
    start = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=2)
    booked = client.post("/api/sessions", json={
        "dispute_id": dispute["id"], "start": start.isoformat(), "end": (start + dt.timedelta(hours=1)).isoformat(),
        "experts": [{"expert_id": e} for e in ids], "override_availability": True})
    assert booked.status_code == 201, booked.text
    return booked.json()


def ws(url: str) -> str:
    return "ws" + url.removeprefix("http")


async def enter(entries: list[str], session_id: int, index: int, token: str, moved: list[str] | None = None,
                tls: ssl.SSLContext | None = None) -> WsClient:
    """Join as the room page does: through the site's address (here: the first live node of
    `entries`, as a proxy would pick), then at the room's node if told `moved`."""
    for _ in range(100):
        for entry in entries:
            url = f"{ws(entry)}/ws/rooms/{session_id}"
            for _ in range(3):
                try:
                    socket = await websockets.connect(url, open_timeout=2, **({"ssl": tls} if url.startswith("wss") else {}))
                except (TimeoutError, OSError, websockets.InvalidHandshake):
                    break  # that node is gone: the next entry
                try:
                    await socket.send(json.dumps({"type": "join", "token": token}))
                    first = json.loads(await asyncio.wait_for(socket.recv(), 10))
                except websockets.ConnectionClosed:
                    break  # dropped: try again, as the page does
                if first["type"] == "config":
                    return await _joined(WsClient(index, socket))
                await socket.close()
                if first["type"] != "moved":
                    break  # refused (no node takes rooms): try again
                if moved is not None:
                    moved.append(first["url"])
                url = first["url"]
        await asyncio.sleep(0.2)
    raise AssertionError("could not join")


async def _joined(client: WsClient) -> WsClient:
    await wait_until(lambda: client.peer_id is not None or client.errors, 10)
    assert client.errors == [], client.errors
    return client


def room_node(cluster: Cluster, session_id: int) -> str:
    with psycopg.connect(plain_url(cluster.database_url)) as db:
        row = db.execute("SELECT node_id FROM room_placements WHERE session_id = %s", (session_id,)).fetchone()
    return str(row[0]) if row else ""


def node_rooms(cluster: Cluster, node_id: str) -> list[str]:
    with psycopg.connect(plain_url(cluster.database_url)) as db:
        row = db.execute("SELECT rooms FROM nodes WHERE id = %s", (node_id,)).fetchone()
    return list(row[0]) if row else []


def everyone_sees_everyone(clients: list[WsClient]) -> bool:
    return all(
        c.peer_id and o.peer_id in c.media.slot_owner and c.media.received_from(o.peer_id).video_frames >= 5
        for c in clients for o in clients if o is not c
    )


async def test_one_room_through_three_nodes_and_back_after_its_node_dies(cluster: Cluster) -> None:
    for name in ("a", "b", "c"):
        cluster.start(name, TIAOJIE_NODE_DEAD_S=DEAD_S)
    a, b, c = (cluster.node(n).url for n in ("a", "b", "c"))
    staff = staff_client(cluster.node("a"))
    first, second = book(staff, "邻里噪音"), book(staff, "宠物狗纠纷")

    # The first room, opened through c, goes to a (all empty: by name); the second, opened
    # through a, goes to b: a holds a room now.
    moved: list[str] = []
    other_host = await enter([c], first["id"], 3, token_of(first, "host"), moved)
    assert room_node(cluster, first["id"]) == "a" and moved == [f"{ws(a)}/ws/rooms/{first['id']}"]
    moved.clear()
    host = await enter([a], second["id"], 0, token_of(second, "host"), moved)
    party = await enter([b], second["id"], 1, token_of(second, "party"), moved)
    expert = await enter([c], second["id"], 2, token_of(second, "expert"), moved)
    assert room_node(cluster, second["id"]) == "b"
    assert moved == [f"{ws(b)}/ws/rooms/{second['id']}"] * 2  # the host's and the expert's, not the party's
    clients = [host, party, expert]
    try:
        for client in clients:
            await client.connect_media()
        await admit(host, party)
        await wait_until(lambda: everyone_sees_everyone(clients), 30)

        # Node b dies mid-mediation. Each page reconnects through the site (here a, then c) ...
        cluster.node("b").kill()
        killed = time.monotonic()
        for client in clients:
            await client.close()
        tokens = [token_of(second, kind) for kind in ("host", "party", "expert")]
        clients = list(await asyncio.gather(*(enter([a, c], second["id"], n, token) for n, token in enumerate(tokens))))
        # ... and the room comes back on the least loaded live node (c: a holds the first room),
        # the party admitted as before, with no host action.
        assert room_node(cluster, second["id"]) == "c"
        assert [m["admitted"] for m in clients[1].messages if m["type"] == "joined"] == [True]
        for client in clients:
            await client.connect_media()
        await wait_until(lambda: everyone_sees_everyone(clients), 30)
        interruption = time.monotonic() - killed
        print(f"room back with media for all 3 after {interruption:.1f} s (node declared dead after {DEAD_S} s)")
        assert interruption < 25

        # The first room never moved, and no node logged a traceback.
        assert room_node(cluster, first["id"]) == "a" and other_host.socket.close_code is None
        for node in cluster.nodes:
            assert "Traceback" not in node.output(), node.output()
    finally:
        for client in [*clients, other_host]:
            await client.close()


async def test_a_draining_node_takes_no_new_rooms_and_finishes_its_own(cluster: Cluster) -> None:
    for name in ("a", "b"):
        cluster.start(name, TIAOJIE_NODE_DEAD_S=DEAD_S)
    a, b = cluster.node("a").url, cluster.node("b").url
    staff = staff_client(cluster.node("a"))
    running, later = book(staff, "邻里噪音"), book(staff, "工资纠纷")
    host = await enter([a], running["id"], 0, token_of(running, "host"))
    assert room_node(cluster, running["id"]) == "a"
    # (what `drain` prints is what the node's last heartbeat said)
    await wait_until(lambda: node_rooms(cluster, "a") == [str(running["id"])], 10)

    env = {"TIAOJIE_NODE_ID": "a"}
    drain = subprocess.run([TIAOJIE, "drain", "--database-url", cluster.database_url], env={**os.environ, **cluster.env, **env},
                           capture_output=True, text=True, timeout=60)
    assert drain.returncode == 0, drain.stderr
    assert "Node a is draining" in drain.stdout and "1 room(s)" in drain.stdout, drain.stdout
    listing = subprocess.run([TIAOJIE, "nodes", "--database-url", cluster.database_url], env={**os.environ, **cluster.env},
                             capture_output=True, text=True, timeout=60).stdout.splitlines()
    assert [line.split()[:3] for line in listing] == [["a", "alive", "draining"], ["b", "alive", "taking"]], listing

    # A new room opened through a goes to b; the running room stays on a, and someone who
    # joins it now goes to a.
    later_host = await enter([a], later["id"], 1, token_of(later, "host"))
    assert room_node(cluster, later["id"]) == "b"
    expert = await enter([b], running["id"], 2, token_of(running, "expert"))
    assert room_node(cluster, running["id"]) == "a"

    # `drain --wait` returns once the room has ended (its people left).
    waiting = subprocess.Popen([TIAOJIE, "drain", "--wait", "--database-url", cluster.database_url],
                               env={**os.environ, **cluster.env, **env}, stdout=subprocess.PIPE, text=True)
    await asyncio.sleep(3)
    assert waiting.poll() is None  # still running there
    for client in (host, expert):
        await client.socket.send(json.dumps({"type": "leave"}))
        await client.close()
    out, _ = await asyncio.get_running_loop().run_in_executor(None, waiting.communicate, None, 60)
    assert waiting.returncode == 0 and "drained" in out, out
    # The ended room, opened again, goes to b.
    again = await enter([a], running["id"], 0, token_of(running, "host"))
    assert room_node(cluster, running["id"]) == "b"
    await again.close()
    await later_host.close()

    # Back in service without a restart.
    undo = subprocess.run([TIAOJIE, "drain", "--undo", "--database-url", cluster.database_url],
                          env={**os.environ, **cluster.env, **env}, capture_output=True, text=True, timeout=60)
    assert "Node a takes new rooms again" in undo.stdout, undo.stdout + undo.stderr
    listing = subprocess.run([TIAOJIE, "nodes", "--database-url", cluster.database_url], env={**os.environ, **cluster.env},
                             capture_output=True, text=True, timeout=60).stdout
    assert listing.splitlines()[0].split()[:3] == ["a", "alive", "taking"], listing


async def test_a_node_cut_off_from_the_database_stops_hosting_before_another_takes_its_room(cluster: Cluster) -> None:
    from urllib.parse import urlsplit

    from tests.cluster.conftest import TcpProxy

    dead_s = 4.0
    database = urlsplit(plain_url(cluster.database_url))
    proxy = TcpProxy(database.hostname or "127.0.0.1", database.port or 5432)
    cluster.start("a", TIAOJIE_NODE_DEAD_S=str(dead_s))
    cluster.start("b", cluster.database_url.replace(f":{database.port}/", f":{proxy.port}/"), TIAOJIE_NODE_DEAD_S=str(dead_s))
    a = cluster.node("a").url
    staff = staff_client(cluster.node("a"))
    busy, session = book(staff, "邻里噪音"), book(staff, "宠物狗纠纷")
    other_host = await enter([a], busy["id"], 3, token_of(busy, "host"))  # a holds a room: the next goes to b
    await wait_until(lambda: node_rooms(cluster, "a") == [str(busy["id"])], 10)
    host = await enter([a], session["id"], 0, token_of(session, "host"))
    expert = await enter([a], session["id"], 2, token_of(session, "expert"))
    clients = [host, expert]
    try:
        assert room_node(cluster, session["id"]) == "b"
        for client in clients:
            await client.connect_media()
        await wait_until(lambda: everyone_sees_everyone(clients), 30)

        # b loses PostgreSQL; its clients do not. It stops hosting and sends them to rejoin
        # while the cluster still counts it alive: nobody else has the room yet.
        proxy.cut()
        cut = time.monotonic()
        await wait_until(lambda: all(any(e["code"] == "rejoin" for e in c.errors) for c in clients), 2 * dead_s)
        fenced = time.monotonic() - cut
        with psycopg.connect(plain_url(cluster.database_url)) as db:
            age = db.execute("SELECT extract(epoch FROM now() AT TIME ZONE 'UTC' - heartbeat_at) FROM nodes WHERE id = 'b'").fetchone()
        assert room_node(cluster, session["id"]) == "b" and float(age[0]) < dead_s, (fenced, age)

        # They rejoin through the site: sent on (moved) to b or refused (no_node) until b is dead by
        # the database's clock, then the room is placed on a; a late joiner sees everyone there.
        for client in clients:
            await client.close()
        clients = [await enter([a], session["id"], 0, token_of(session, "host")),
                   await enter([a], session["id"], 2, token_of(session, "expert"))]
        assert room_node(cluster, session["id"]) == "a"
        party = await enter([a], session["id"], 1, token_of(session, "party"))
        clients.append(party)
        await admit(clients[0], party)
        for client in clients:
            await client.connect_media()
        await wait_until(lambda: everyone_sees_everyone(clients), 30)
        print(f"b stopped hosting {fenced:.1f} s after losing the database; the room is back on a with everyone")
    finally:
        for client in [*clients, other_host]:
            await client.close()
