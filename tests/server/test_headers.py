"""Security headers on every answer: pages, the API, errors, static files; an evidence file keeps its sandbox."""
from __future__ import annotations

import httpx

from tests.conftest import Running

PATHS = ["/login", "/expert/login", "/join/not-a-token", "/nowhere", "/api/", "/api/openapi.json", "/api/disputes",
         "/api/disputes/1", "/healthz", "/static/app.css", "/static/room.js", "/", "/disputes", "/statistics"]


async def test_every_answer_sends_the_security_headers(running: Running, staff_client: httpx.AsyncClient) -> None:
    anonymous = running.client()
    for client in (anonymous, staff_client):
        for path in PATHS:
            response = await client.get(path)
            policy = response.headers.get("content-security-policy", "")
            assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy and "'unsafe-inline'" not in policy, path
            assert response.headers["x-content-type-options"] == "nosniff", path
            assert response.headers["referrer-policy"] == "no-referrer", path
    refused = await anonymous.post("/api/disputes", json={})
    assert refused.status_code in (401, 403) and "frame-ancestors" in refused.headers["content-security-policy"]


async def test_no_page_runs_inline_script() -> None:
    import re
    from pathlib import Path

    templates = Path(__file__).resolve().parents[2] / "web" / "templates"
    for template in templates.rglob("*.html"):
        text = template.read_text(encoding="utf-8")
        inline = [m for m in re.findall(r"<script([^>]*)>(.*?)</script>", text, re.S)
                  if m[1].strip() and "application/json" not in m[0]]
        assert not inline, template
        assert not re.search(r"\son[a-z]+=", text), f"{template}: an inline event handler"
