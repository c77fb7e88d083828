"""Several real `tiaojie serve` processes on loopback ports, sharing one PostgreSQL database."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from foundation.database import upgrade_database
from tests.conftest import STAFF_PASSWORD, free_port
from tests.postgres import fresh_database, postgres_server

TIAOJIE = str(Path(sys.executable).with_name("tiaojie"))


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@dataclasses.dataclass
class Node:
    """One server process."""

    name: str
    port: int
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """Die at once, as a machine that loses power (no lease given up, no goodbye)."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_healthy(url: str, process: subprocess.Popen[bytes], name: str, output: Callable[[], str] = str) -> None:
    """Wait until a server process answers its health check (RuntimeError with its output if it
    exits or does not start within 30 s)."""
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{output()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not start:\n{output()}")


@dataclasses.dataclass
class Cluster:
    """Nodes started on demand, all on the same database and secret."""

    database_url: str
    folder: Path
    env: dict[str, str]
    nodes: list[Node] = dataclasses.field(default_factory=list)

    def start(self, name: str, database_url: str | None = None, *, media_workers: int = 0, **env: str) -> Node:
        """Start a node and wait until it answers."""
        node = self.spawn(name, database_url, media_workers=media_workers, **env)
        self.ready(node)
        return node

    def spawn(self, name: str, database_url: str | None = None, *, media_workers: int = 0, **env: str) -> Node:
        """Start a node's process (media in the web process, unless given workers as shipped)."""
        port = free_port()
        log = self.folder / f"node-{name}.log"
        environment = {
            **os.environ, **self.env, "TIAOJIE_NODE_ID": name, "TIAOJIE_NODE_URL": f"http://127.0.0.1:{port}",
            # One data folder for all (evidence, recordings): shared storage, as the README asks.
            "TIAOJIE_DATA_DIR": str(self.folder / "data"), "TIAOJIE_BASE_URL": f"http://127.0.0.1:{port}", **env,
        }
        with log.open("wb") as out:
            process = subprocess.Popen(
                [TIAOJIE, "serve", "--port", str(port), "--media-workers", str(media_workers), "--database-url", database_url or self.database_url],
                env=environment, stdout=out, stderr=subprocess.STDOUT,
            )
        node = Node(name, port, log, process)
        self.nodes.append(node)
        return node

    def ready(self, node: Node) -> None:
        """Wait until the node answers its health check."""
        wait_healthy(node.url, node.process, f"node {node.name}", node.output)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)


@contextlib.contextmanager
def nodes_on(server_url: str, folder: Path, **env: str) -> Iterator[Cluster]:
    """No nodes yet, on a new empty database of this PostgreSQL server (no schema); every node
    started is stopped at the end (the tests' fixtures, and bench/cluster.py)."""
    with fresh_database(server_url) as url:
        cluster = Cluster(url, folder, {"TIAOJIE_BOOKING_NOTICE_MIN": "0", **env})
        try:
            yield cluster
        finally:
            for node in cluster.nodes:
                node.stop()


def with_staff(cluster: Cluster) -> Cluster:
    """The cluster's database with the schema and a staff account `staff1`."""
    upgrade_database(cluster.database_url)
    subprocess.run([TIAOJIE, "create-staff", "staff1", "--password", STAFF_PASSWORD, "--database-url", cluster.database_url],
                   env={**os.environ, **cluster.env}, check=True, capture_output=True)
    return cluster


@pytest.fixture
def bare_cluster(postgres: str, tmp_path: Path) -> Iterator[Cluster]:
    """No nodes yet, on a new empty database (no schema)."""
    with nodes_on(postgres, tmp_path, TIAOJIE_SECRET_KEY="cluster-test-secret-of-at-least-32-characters", TIAOJIE_SCHEDULER_LEASE_S="3") as cluster:
        yield cluster


@pytest.fixture
def cluster(bare_cluster: Cluster) -> Cluster:
    """No nodes yet, on a fresh database with the schema and a staff account `staff1`."""
    return with_staff(bare_cluster)


def staff_client(node: Node) -> httpx.Client:
    """A client of one node, logged in as staff1 (a login is good on every node)."""
    client = httpx.Client(base_url=node.url, timeout=30)
    csrf = client.get("/api/auth/csrf").json()["csrf_token"]
    response = client.post("/api/auth/login", json={"username": "staff1", "password": STAFF_PASSWORD},
                           headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client


# Chromium for the cluster's browser test: the web tests' fixture.
from tests.web.conftest import browser  # noqa: E402, F401


class TcpProxy:
    """A TCP relay to a server that a test can cut (every connection dropped, new ones refused):
    a node's network path to PostgreSQL. Threads, so that it relays while the test blocks."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (a close alone does not)
            self._listener.close()
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # cut
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
