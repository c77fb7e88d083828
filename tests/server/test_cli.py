"""The `tiaojie` command: demo data, staff accounts, and a real server process."""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import signal
import sqlite3
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from server.cli import main
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_demo_loads_once_and_prints_a_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    main(["demo"])
    out = capsys.readouterr().out
    assert re.search(r"password '(\S+)'", out)
    main(["demo"])
    assert "already loaded" in capsys.readouterr().out
    assert (tmp_path / "var" / "tiaojie.sqlite3").exists()


def test_create_staff_refuses_short_and_duplicate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["create-staff", "wang", "--password", "short"])
    main(["create-staff", "wang", "--password", "long enough pw", "--admin"])
    assert "created" in capsys.readouterr().out
    with pytest.raises(SystemExit) as caught:
        main(["create-staff", "wang", "--password", "long enough pw"])
    assert "taken" in str(caught.value)


def _start_server(port: int, env: dict[str, str], *args: str, scheme: str = "http", group: bool = False) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", "from server.cli import main; main()", "serve", "--port", str(port), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=group,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{scheme}://127.0.0.1:{port}/healthz", verify=False).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.2)


def test_serve_demo_answers_healthz_login_and_api(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TIAOJIE_DATA_DIR": str(tmp_path)}
    process = _start_server(port, env, "--demo")
    try:
        with httpx.Client(base_url=base) as client:
            assert "工作人员登录" in client.get("/login").text
            assert client.get("/api/openapi.json").json()["info"]["title"].startswith("Tiaojie")
        process.terminate()
        output = process.communicate(timeout=15)[0]
        password = re.search(r"password '(\S+)'", output).group(1)
        # The login comes last, after the server's own start-up lines.
        banner = output[output.index("Tiaojie is running"):]
        assert f"http://127.0.0.1:{port}/login" in banner and password in banner
        assert "Application startup complete" in output[:output.index("Tiaojie is running")]
        # Start again on the same data: the demo is not loaded twice and the password works.
        process = _start_server(port, env)
        with httpx.Client(base_url=base) as client:
            token = client.get("/api/auth/csrf").json()["csrf_token"]
            login = client.post("/api/auth/login", json={"username": "admin", "password": password},
                                headers={"X-CSRF-Token": token})
            assert login.status_code == 200
            experts = client.get("/api/experts").json()
            assert len(experts) == 20
            assert {e["role"] for e in experts} == {"legal_officer", "lawyer", "retired_cadre", "governance_specialist", "counsellor", "mediator"}
            disputes = client.get("/api/disputes").json()
            assert len(disputes) == 12 and {d["risk_level"] for d in disputes} == {"low", "medium", "high", "urgent"}
        # Each demo office sees its own cases and the experts who serve it; the supervisor sees both.
        seen = {}
        for username in ("chaoyang", "supervisor"):
            with httpx.Client(base_url=base) as client:
                token = client.get("/api/auth/csrf").json()["csrf_token"]
                assert client.post("/api/auth/login", json={"username": username, "password": password},
                                   headers={"X-CSRF-Token": token}).status_code == 200
                seen[username] = (len(client.get("/api/disputes").json()), len(client.get("/api/experts").json()))
        assert seen == {"chaoyang": (3, 10), "supervisor": (15, 20)}
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_sigterm_to_the_whole_group_stops_cleanly(tmp_path: Path) -> None:
    # systemd's default stop (KillMode=control-group) signals every process of the service at
    # once: the media workers must not die first and be taken for crashed and restarted.
    port = free_port()
    process = _start_server(port, {**os.environ, "TIAOJIE_DATA_DIR": str(tmp_path)}, "--media-workers", "2", group=True)
    os.killpg(process.pid, signal.SIGTERM)
    output = process.communicate(timeout=30)[0]
    assert process.returncode in (0, -signal.SIGTERM), output  # uvicorn ends by the signal it was stopped with
    assert "Application shutdown complete" in output
    assert "media worker" not in output and "Traceback" not in output and " ERROR " not in output, output


def test_reset_password_ends_sessions_and_the_new_one_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    main(["create-staff", "wang", "--password", "long enough pw"])
    with pytest.raises(SystemExit) as caught:
        main(["reset-password", "nobody"])
    assert "no staff account 'nobody'" in str(caught.value)
    capsys.readouterr()
    main(["reset-password", "wang"])
    password = re.search(r"password '(\S+)'", capsys.readouterr().out).group(1)
    from accounts.service import verify_password
    stored = sqlite3.connect(tmp_path / "var" / "tiaojie.sqlite3").execute(
        "SELECT password_hash FROM staff_users WHERE username = 'wang'").fetchone()[0]
    assert verify_password(stored, password) and not verify_password(stored, "long enough pw")


def test_reset_password_of_a_disabled_account_says_so_and_enables_it_on_request(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    main(["create-staff", "wang", "--password", "long enough pw"])
    database = sqlite3.connect(tmp_path / "var" / "tiaojie.sqlite3")
    with database:
        database.execute("UPDATE staff_users SET active = 0 WHERE username = 'wang'")
    with pytest.raises(SystemExit) as caught:
        main(["reset-password", "wang"])
    assert "is disabled" in str(caught.value) and "--enable" in str(caught.value)
    capsys.readouterr()
    main(["reset-password", "wang", "--enable"])
    assert "password '" in capsys.readouterr().out
    assert database.execute("SELECT active FROM staff_users WHERE username = 'wang'").fetchone()[0] == 1


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as an office would make one for its own address."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "office.crt", folder / "office.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def _join_links(client: httpx.Client, **headers: str) -> set[str]:
    """The demo session's join links as a logged-in clerk sees them, each cut before /join/."""
    token = client.get("/api/auth/csrf").json()["csrf_token"]
    assert client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD},
                       headers={"X-CSRF-Token": token}).status_code == 200
    # Today's or tomorrow's (the demo books one soon and one tomorrow; just before midnight the
    # soon one is tomorrow's, and today has none).
    tomorrow = (dt.datetime.now(dt.timezone(dt.timedelta(hours=8))) + dt.timedelta(days=1)).date().isoformat()
    session = (client.get("/api/schedule", headers=headers).json()["sessions"]
               + client.get("/api/schedule", params={"date": tomorrow}, headers=headers).json()["sessions"])[0]
    detail = client.get(f"/api/sessions/{session['session_id']}", headers=headers).json()
    return {p["join_url"].split("/join/")[0] for p in detail["participants"]}


def _demo_with_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The demo data loaded in tmp_path with admin's password PASSWORD; the server's environment."""
    monkeypatch.setenv("TIAOJIE_DATA_DIR", str(tmp_path))
    main(["demo"])
    main(["reset-password", "admin", "--password", PASSWORD])
    return {**os.environ, "TIAOJIE_DATA_DIR": str(tmp_path)}


PASSWORD = "long enough pw"


def test_serve_over_https_with_the_office_s_certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = _self_signed(tmp_path)
    port = free_port()
    process = _start_server(port, _demo_with_password(tmp_path, monkeypatch), "--tls-cert", str(cert), "--tls-key", str(key),
                            scheme="https")
    try:
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=ssl.create_default_context(cafile=cert)) as client:
            assert _join_links(client) == {f"https://127.0.0.1:{port}"}
            assert client.cookies.jar and all(cookie.secure for cookie in client.cookies.jar)
    finally:
        process.terminate()
    output = process.communicate(timeout=15)[0]
    banner = output[output.index("Tiaojie is running"):]
    assert f"Open https://127.0.0.1:{port}/login" in banner and "--host 0.0.0.0 --tls-cert" in banner


@pytest.mark.parametrize("trusted, scheme", [(None, "https"), ("10.1.2.3", "http")])
def test_links_follow_the_scheme_a_trusted_proxy_forwards_and_only_that(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trusted: str | None, scheme: str,
) -> None:
    env = _demo_with_password(tmp_path, monkeypatch)
    if trusted:  # the default trusts this computer (a proxy beside the server)
        env["TIAOJIE_TRUSTED_PROXIES"] = trusted
    port = free_port()
    process = _start_server(port, env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            assert _join_links(client, **{"X-Forwarded-Proto": "https"}) == {f"{scheme}://127.0.0.1:{port}"}
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_a_second_server_on_the_same_sqlite_data_is_refused_naming_the_first(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "TIAOJIE_DATA_DIR": str(tmp_path)}
    first = _start_server(port, env, "--media-workers", "0")
    try:
        second = subprocess.run(
            [sys.executable, "-c", "from server.cli import main; main()", "serve", "--port", str(free_port()), "--media-workers", "0"],
            env=env, capture_output=True, text=True, timeout=60,
        )
        assert second.returncode != 0
        assert f"pid {first.pid}" in second.stderr and "already serves" in second.stderr, second.stderr
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200  # the first one goes on
    finally:
        first.terminate()
        first.communicate(timeout=15)
    # Once the first has stopped, a server starts on the data again.
    again = _start_server(port, env, "--media-workers", "0")
    again.terminate()
    again.communicate(timeout=15)


def test_serve_refuses_placeholder_short_and_missing_cluster_secrets(tmp_path: Path) -> None:
    def serve(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "from server.cli import main; main()", "serve", "--port", str(free_port()), "--media-workers", "0"],
            env={**os.environ, "TIAOJIE_DATA_DIR": str(tmp_path), **env}, capture_output=True, text=True, timeout=60,
        )

    # The values of deploy/tiaojie.env.example, as shipped.
    example = dict(line.split("=", 1) for line in (ROOT / "deploy" / "tiaojie.env.example").read_text().splitlines()
                   if line and not line.startswith("#") and "=" in line)
    shipped = serve(TIAOJIE_SECRET_KEY=example["TIAOJIE_SECRET_KEY"], TIAOJIE_METRICS_TOKEN=example["TIAOJIE_METRICS_TOKEN"])
    assert shipped.returncode != 0
    assert "TIAOJIE_SECRET_KEY is still the placeholder" in shipped.stderr
    assert "TIAOJIE_METRICS_TOKEN is still the placeholder" in shipped.stderr
    short = serve(TIAOJIE_SECRET_KEY="x" * 20)
    assert short.returncode != 0 and "has 20 characters, fewer than 32" in short.stderr
    cluster = serve(TIAOJIE_DATABASE_URL="postgresql+asyncpg://tiaojie@127.0.0.1:1/tiaojie")
    assert cluster.returncode != 0 and "on PostgreSQL every node needs the same one" in cluster.stderr
