"""Nodes started together (a compose file, a city's machines after a power cut) on a new
database: each upgrades the schema and reaches for the scheduler lease at start, and all of
them come up."""
from __future__ import annotations

import asyncio

import psycopg
from sqlalchemy.ext.asyncio import AsyncSession

from foundation.database import create_engine, create_session_factory, upgrade_database
from scheduling.scheduler import try_lease
from tests.cluster.conftest import Cluster
from tests.postgres import fresh_database, plain_url


def test_three_nodes_started_at_once_on_an_empty_database_all_come_up(bare_cluster: Cluster) -> None:
    nodes = [bare_cluster.spawn(name) for name in ("a", "b", "c")]
    for node in nodes:
        bare_cluster.ready(node)
    with psycopg.connect(plain_url(bare_cluster.database_url)) as db:
        assert db.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 1
        assert db.execute("SELECT count(*) FROM nodes").fetchone()[0] == 3
    for node in nodes:
        assert "Traceback" not in node.output(), node.output()


async def test_two_nodes_taking_the_first_lease_at_once_do_not_fail(postgres: str) -> None:
    with fresh_database(postgres) as url:
        upgrade_database(url)
        engine = create_engine(url)
        factory = create_session_factory(engine)
        try:
            async with factory() as first, factory() as second:
                await first.begin()
                assert await try_lease(first, "a-1", 30)
                await first.flush()  # a's row is in, not committed: b's insert waits for it
                racing = asyncio.create_task(_take(second, "b-1"))
                await asyncio.sleep(0.5)
                await first.commit()
                assert await racing is False  # b lost the race and carries on, without the lease
        finally:
            await engine.dispose()


async def _take(db: AsyncSession, holder: str) -> bool:
    async with db.begin():
        return await try_lease(db, holder, 30)


def test_the_demo_loaded_by_three_nodes_at_once_is_loaded_once(postgres: str, tmp_path) -> None:
    import os
    import subprocess

    from tests.cluster.conftest import TIAOJIE

    with fresh_database(postgres) as url:
        upgrade_database(url)
        env = {**os.environ, "TIAOJIE_DATA_DIR": str(tmp_path), "TIAOJIE_SECRET_KEY": "demo-race-secret-of-at-least-32-characters"}
        runs = [subprocess.Popen([TIAOJIE, "demo", "--database-url", url], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for _ in range(3)]
        outputs = [run.communicate(timeout=120)[0] for run in runs]
        assert [run.returncode for run in runs] == [0, 0, 0], outputs
        assert sum("Demo data loaded" in out for out in outputs) == 1, outputs
        with psycopg.connect(plain_url(url)) as db:
            assert db.execute("SELECT count(*) FROM offices").fetchone()[0] == 3  # the district and its two offices
