"""Nodes started together (a compose file, a city's machines after a power cut) on a new
database: each upgrades the schema at start, and all of them come up."""
from __future__ import annotations

import psycopg

from tests.cluster.conftest import Cluster
from tests.postgres import plain_url


def test_three_nodes_started_at_once_on_an_empty_database_all_come_up(bare_cluster: Cluster) -> None:
    nodes = [bare_cluster.spawn(name) for name in ("a", "b", "c")]
    for node in nodes:
        bare_cluster.ready(node)
    with psycopg.connect(plain_url(bare_cluster.database_url)) as db:
        assert db.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 1
        assert db.execute("SELECT count(*) FROM nodes").fetchone()[0] == 3
    for node in nodes:
        assert "Traceback" not in node.output(), node.output()
