"""deploy/nginx.conf, as shipped, in front of two nodes: TLS, the redirect from http, the
WebSocket upgrade, and the per-node paths that `moved` sends a page to. The nodes share their
data folder, as the README asks, so evidence uploaded through one is read through the other."""
from __future__ import annotations

import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cluster.conftest import Cluster
from tests.cluster.test_rooms_across_nodes import book, enter, everyone_sees_everyone, room_node
from tests.conftest import STAFF_PASSWORD, free_port, token_of
from tests.signaling.test_forwarding import wait_until
from tests.signaling.test_ws import admit

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")


class Proxy:
    """nginx with deploy/nginx.conf on loopback ports."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.http_port, self.https_port = free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def configure(self, nodes: dict[str, int] | None) -> Path:
        """deploy/nginx.conf on this machine's ports and certificate, with the nodes on these
        loopback ports (None: the nodes as shipped); the main configuration file that includes it."""
        cert, key = self.folder / "cert.pem", self.folder / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
                        "-out", str(cert), "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
        site = (DEPLOY / "nginx.conf").read_text()
        replacements = {
            "listen 80;": f"listen 127.0.0.1:{self.http_port};",
            "listen 443 ssl http2;": f"listen 127.0.0.1:{self.https_port} ssl http2;",
            "/etc/ssl/tiaojie/fullchain.pem": str(cert), "/etc/ssl/tiaojie/privkey.pem": str(key),
        }
        for name, port in (nodes or {}).items():
            replacements[f"node-{name}:8000"] = f"127.0.0.1:{port}"
            replacements[f"172.28.0.{11 + ord(name) - ord('a')}:8000"] = f"127.0.0.1:{port}"
        for old, new in replacements.items():
            assert old in site, f"deploy/nginx.conf no longer has {old!r}"
            site = site.replace(old, new)
        (self.folder / "site.conf").write_text(site)
        temp = self.folder / "temp"
        temp.mkdir(exist_ok=True)
        main = self.folder / "nginx.conf"
        main.write_text(f"""{"user root;" if os.geteuid() == 0 else ""}
daemon off;
worker_processes 1;
pid {self.folder}/nginx.pid;
error_log {self.folder}/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {self.folder}/access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {self.folder}/site.conf;
}}
""")
        return main

    def test(self, main: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nginx", "-t", "-c", str(main), "-p", str(self.folder)], capture_output=True, text=True)

    def start(self, nodes: dict[str, int]) -> None:
        main = self.configure(nodes)
        check = self.test(main)
        assert check.returncode == 0, check.stderr
        self.process = subprocess.Popen(["nginx", "-c", str(main), "-p", str(self.folder)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                httpx.get(f"{self.url}/healthz", verify=False, timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError((self.folder / "error.log").read_text())

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    folder = tmp_path / "nginx"
    folder.mkdir()
    proxy = Proxy(folder)
    yield proxy
    proxy.stop()


async def test_two_nodes_behind_the_shipped_nginx_config(cluster: Cluster, proxy: Proxy) -> None:
    site = proxy.url
    for name in ("a", "b"):
        cluster.start(name, TIAOJIE_NODE_URL=f"{site}/n/{name}", TIAOJIE_BASE_URL=site)
    proxy.start({n.name: n.port for n in cluster.nodes})

    # Plain http is sent to https.
    plain = httpx.get(f"http://127.0.0.1:{proxy.http_port}/login", follow_redirects=False)
    assert plain.status_code == 301 and plain.headers["location"].startswith("https://")

    staff = httpx.Client(base_url=site, verify=False, timeout=30)
    # The nodes' metrics are for the monitoring server, never passed on by the site.
    assert [staff.get(path).status_code for path in ("/metrics", "/n/a/metrics")] == [404, 404]
    csrf = staff.get("/api/auth/csrf").json()["csrf_token"]
    login = staff.post("/api/auth/login", json={"username": "staff1", "password": STAFF_PASSWORD}, headers={"X-CSRF-Token": csrf})
    assert login.status_code == 200, login.text
    staff.headers["X-CSRF-Token"] = login.json()["csrf_token"]
    session = book(staff, "宠物狗纠纷")
    assert all(p["join_url"].startswith(f"{site}/join/") for p in session["participants"])

    # Evidence uploaded through node a is read through node b (one login for both).
    uploaded = staff.post(f"/n/a/api/disputes/{session['dispute_id']}/evidence", params={"name": "现场照片.png"}, content=PNG)
    assert uploaded.status_code == 201, uploaded.text
    fetched = staff.get(f"/n/b/api/evidence/{uploaded.json()['id']}/file")
    assert fetched.status_code == 200 and fetched.content == PNG

    # The host joins through the site's address; the party through node b's path, and is sent on
    # to the room's node (a) through the proxy, over TLS.
    tls = ssl.create_default_context()
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    host = await enter([site], session["id"], 0, token_of(session, "host"), tls=tls)
    moved: list[str] = []
    party = await enter([f"{site}/n/b"], session["id"], 1, token_of(session, "party"), moved, tls=tls)
    assert room_node(cluster, session["id"]) == "a"  # both nodes empty: by name
    assert moved == [f"wss://127.0.0.1:{proxy.https_port}/n/a/ws/rooms/{session['id']}"]
    clients = [host, party]
    try:
        for client in clients:
            await client.connect_media()
        await admit(host, party)
        await wait_until(lambda: everyone_sees_everyone(clients), 30)
    finally:
        for client in clients:
            await client.close()


def test_nginx_takes_the_shipped_config_while_a_node_name_does_not_resolve(proxy: Proxy) -> None:
    """nginx refused to start (and `nginx -t` failed) while a name in the upstream block did not
    resolve: one node missing from DNS kept the whole site down."""
    with pytest.raises(OSError):
        socket.getaddrinfo("node-a", 8000)  # the shipped names resolve nowhere here
    check = proxy.test(proxy.configure(None))
    assert check.returncode == 0, check.stderr
