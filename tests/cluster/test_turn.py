"""deploy/turnserver.conf as shipped (only addresses, ports and certificate paths replaced) starts
Debian's coturn with its plain listener and its TLS listener for offices that allow only HTTPS out."""
from __future__ import annotations

import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.turn
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_the_shipped_coturn_config_listens_in_plain_and_over_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
                    "-out", str(cert), "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    plain, tls = free_port(), free_port()
    config = (DEPLOY / "turnserver.conf").read_text()
    for old, new in {
        "listening-port=3478": f"listening-port={plain}", "tls-listening-port=443": f"tls-listening-port={tls}",
        "listening-ip=203.0.113.11": "listening-ip=127.0.0.1", "relay-ip=203.0.113.11": "relay-ip=127.0.0.1",
        "external-ip=203.0.113.10": "external-ip=127.0.0.1",
        "/etc/ssl/tiaojie/fullchain.pem": str(cert), "/etc/ssl/tiaojie/privkey.pem": str(key),
    }.items():
        assert old in config, f"deploy/turnserver.conf no longer has {old!r}"
        config = config.replace(old, new)
    (tmp_path / "turnserver.conf").write_text(config + f"\npidfile={tmp_path}/turn.pid\nno-stdout-log\nlog-file={tmp_path}/turn.log\n")
    server = subprocess.Popen(["turnserver", "-c", str(tmp_path / "turnserver.conf")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", tls), timeout=2) as raw, \
                        context.wrap_socket(raw, server_hostname="127.0.0.1") as secure:
                    assert secure.version() in ("TLSv1.2", "TLSv1.3")  # no TLS 1.0/1.1 (no-tlsv1, no-tlsv1_1)
                break
            except (OSError, ssl.SSLError):
                assert server.poll() is None, "coturn exited"
                assert time.monotonic() < deadline, "coturn's TLS listener never answered"
                time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", plain), timeout=2):
            pass  # and the plain TCP listener
    finally:
        server.terminate()
        server.wait(10)
    log = "".join(path.read_text(errors="replace") for path in tmp_path.glob("turn*.log"))
    assert "CONFIG ERROR" not in log and "cannot find certificate" not in log.lower(), log
