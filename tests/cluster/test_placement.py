"""Room placement rules (plain functions), and nodes placing rooms at the same moment on a real
PostgreSQL database."""
from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from foundation.config import Settings
from foundation.database import create_engine, create_session_factory, utcnow
from signaling.cluster.placement import Load, NodeRow, NoNode, RoomPlacement, arriving_rooms, choose, heartbeat, holds, place
from tests.conftest import add_staff, book, log_in, started
from tests.postgres import fresh_database

NOW = dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.timezone.utc)
DEAD_S = 10


def node(name: str, age_s: float = 1, *, draining: bool = False, participants: int = 0, rooms: tuple[str, ...] = (),
         streams: int = 0, overloaded: bool = False) -> NodeRow:
    return NodeRow(id=name, url=f"http://{name}", started_at=NOW, heartbeat_at=NOW - dt.timedelta(seconds=age_s),
                   draining=draining, participants=participants, rooms=list(rooms), streams=streams, overloaded=overloaded)


def test_the_least_loaded_live_node_that_takes_rooms_gets_a_new_room() -> None:
    # One large room (8 people, 112 streams) weighs more than two small ones (3 people, 12 streams each).
    nodes = [node("a", participants=8, streams=112, rooms=("1",)), node("b", participants=6, streams=24, rooms=("2", "3")),
             node("c", age_s=30), node("d", draining=True)]
    assert choose(nodes, {}, NOW, DEAD_S).id == "b"  # fewest streams
    assert choose(nodes, {"b": 3}, NOW, DEAD_S).id == "a"  # three rooms on their way to b: 24 + 120 streams
    assert choose([node("a", participants=2), node("b", participants=1)], {}, NOW, DEAD_S).id == "b"  # then people
    assert choose([node("a", rooms=("1",)), node("b")], {}, NOW, DEAD_S).id == "b"  # then rooms
    # A node whose media workers all shed video (signaling/media/overload.py) comes last, however light.
    assert choose([node("a", overloaded=True), node("b", streams=200)], {}, NOW, DEAD_S).id == "b"
    assert choose([node("a", overloaded=True)], {}, NOW, DEAD_S).id == "a"  # (but still takes rooms alone)
    with pytest.raises(NoNode):
        choose([node("c", age_s=30), node("d", draining=True)], {}, NOW, DEAD_S)


def test_rooms_count_while_their_people_arrive_and_not_once_they_ended() -> None:
    nodes = [node("a", age_s=1, rooms=("1",))]
    placements = [RoomPlacement(session_id=1, node_id="a", placed_at=NOW - dt.timedelta(minutes=5)),  # running
                  RoomPlacement(session_id=2, node_id="a", placed_at=NOW),  # placed after a's last heartbeat
                  RoomPlacement(session_id=3, node_id="a", placed_at=NOW - dt.timedelta(seconds=30)),  # ended
                  # placed a moment before the heartbeat, whose load was taken before the join reached the media
                  RoomPlacement(session_id=4, node_id="a", placed_at=NOW - dt.timedelta(seconds=1.5))]
    assert arriving_rooms(nodes, placements) == {"a": 2}


def test_a_placement_holds_while_its_node_lives_and_a_drain_lets_it_finish() -> None:
    placed = RoomPlacement(session_id=7, node_id="a", placed_at=NOW - dt.timedelta(minutes=5))
    assert holds(node("a"), placed, NOW, DEAD_S)
    assert not holds(node("a", age_s=11), placed, NOW, DEAD_S)  # dead: placed again
    assert holds(node("a", draining=True, rooms=("7",)), placed, NOW, DEAD_S)  # still running there
    assert not holds(node("a", draining=True, rooms=("8",)), placed, NOW, DEAD_S)  # it ended: moves
    just_placed = RoomPlacement(session_id=7, node_id="a", placed_at=NOW)
    assert holds(node("a", draining=True), just_placed, NOW, DEAD_S)  # not reported yet: stays


@pytest.fixture
def postgres_settings(postgres: str, tmp_path: Path) -> Iterator[Settings]:
    with fresh_database(postgres) as url:
        from foundation.database import upgrade_database

        upgrade_database(url)
        yield Settings(data_dir=tmp_path, secret_key="test", base_url="http://test", database_url=url)


async def test_nodes_placing_rooms_at_once_agree_and_spread_them(postgres_settings: Settings) -> None:
    async with started(postgres_settings) as running:
        await add_staff(running)
        staff = await log_in(running)
        sessions = []
        start = utcnow() + dt.timedelta(days=1)
        for n in range(6):
            expert = (await staff.post("/api/experts", json={"name": f"专家{n}", "role": "lawyer", "email": f"e{n}@e.cn"})).json()
            dispute = (await staff.post("/api/disputes", json={
                "title": f"纠纷{n}", "dispute_type": "rental", "parties": [{"name": "赵小燕", "side": "applicant"}]})).json()
            sessions.append((await book(staff, start, [expert["id"]], dispute["id"]))["id"])

    engine = create_engine(postgres_settings.database_url)
    factory = create_session_factory(engine)
    try:
        now = utcnow()
        for name in ("a", "b", "c"):
            async with factory() as db, db.begin():
                await heartbeat(db, name, f"http://{name}", Load(0, 0, ()), now, starting=True)

        async def place_once(session_id: int) -> str:
            async with factory() as db, db.begin():
                return (await place(db, session_id, utcnow(), DEAD_S)).id

        # Twenty participants of one room arrive through the nodes at the same moment: one node.
        same = await asyncio.gather(*(place_once(sessions[0]) for _ in range(20)))
        assert len(set(same)) == 1
        # The other five rooms open one after another: three nodes, two rooms each.
        for session_id in sessions[1:]:
            await place_once(session_id)
        async with factory() as db:
            from sqlalchemy import select

            counts = Counter((await db.scalars(select(RoomPlacement.node_id))).all())
        assert sorted(counts.values()) == [2, 2, 2]
    finally:
        await engine.dispose()


async def test_a_lock_held_elsewhere_does_not_stop_the_heartbeat_nor_fence_a_healthy_node(postgres_settings: Settings) -> None:
    """A node cut off in the middle of placing a room keeps its row locks until PostgreSQL notices
    (minutes). The heartbeat of a healthy node used to wait behind them, time out, and fence the
    node: its rooms' people were sent away for nothing."""
    import psycopg
    from sqlalchemy import select

    from signaling.cluster.placement import Membership

    async with started(postgres_settings) as running:
        await add_staff(running)
        staff = await log_in(running)
        expert = (await staff.post("/api/experts", json={"name": "专家", "role": "lawyer", "email": "l@e.cn"})).json()
        dispute = (await staff.post("/api/disputes", json={
            "title": "纠纷", "dispute_type": "rental", "parties": [{"name": "赵小燕", "side": "applicant"}]})).json()
        session_id = (await book(staff, utcnow() + dt.timedelta(days=1), [expert["id"]], dispute["id"]))["id"]
    engine = create_engine(postgres_settings.database_url)
    factory = create_session_factory(engine)
    evicted: list[object] = []

    async def evict(rooms: object) -> None:
        evicted.append(rooms)

    async def load() -> Load:
        return Load(0, 0, ())

    membership = Membership(factory, "a", "http://a", 4.0, load, evict=evict)
    try:
        await membership.start()
        async with factory() as db, db.begin():  # a room placed here long ago that never came
            db.add(RoomPlacement(session_id=session_id, node_id="a", placed_at=utcnow() - dt.timedelta(minutes=5)))
        plain = postgres_settings.database_url.replace("postgresql+asyncpg://", "postgresql://")
        with psycopg.connect(plain) as holder:  # another node's transaction, hung with the row locked
            holder.execute("SELECT * FROM room_placements WHERE session_id = %s FOR UPDATE", (session_id,))
            await asyncio.sleep(4.5)  # past the fence (2 s) and the whole dead time
            assert membership.hosting and membership.fences == 0 and not evicted
            async with factory() as db:
                beat = await db.scalar(select(NodeRow.heartbeat_at).where(NodeRow.id == "a"))
            assert beat is not None and (utcnow() - beat).total_seconds() < 2
        await asyncio.sleep(1.5)  # the lock gone: the placement that never came is forgotten
        async with factory() as db:
            assert await db.get(RoomPlacement, session_id) is None
    finally:
        await membership.stop()
        await engine.dispose()
