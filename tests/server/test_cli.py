"""The `tiaojie` command: demo data, staff accounts, and a real server process."""
from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from server.cli import main
from tests.conftest import free_port


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


def _start_server(port: int, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", "from server.cli import main; main()", "serve", "--port", str(port), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
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
            assert len(disputes) == 15 and {d["risk_level"] for d in disputes} == {"low", "medium", "high", "urgent"}
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_reset_password_ends_sessions_and_the_new_one_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    main(["create-staff", "wang", "--password", "long enough pw"])
    with pytest.raises(SystemExit) as caught:
        main(["reset-password", "nobody"])
    assert "no staff account 'nobody'" in str(caught.value)
    capsys.readouterr()
    main(["reset-password", "wang"])
    password = re.search(r"password '(\S+)'", capsys.readouterr().out).group(1)
    from server.accounts import verify_password
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
