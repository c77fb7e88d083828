"""The office pages render in Chinese and in English, with no message key left untranslated."""
from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import Running, add_staff, log_in
from tests.scheduling.conftest import booking, next_monday

PAGES = ["/follow-ups", "/agreement-templates", "/reviews", "/statistics", "/audit"]
KEY = re.compile(r"(?<![\w/])(?:nav|review|stats|audit|followup|templates|outcome|evidence|form)\.[a-z_]+\b(?!\.js)")


async def test_office_pages_in_both_languages(running: Running, staff_client: httpx.AsyncClient, pool: dict[str, Any]) -> None:
    await add_staff(running, "chief", role="admin")
    admin = await log_in(running, "chief")
    session = (await staff_client.post("/api/sessions", json=booking(pool, next_monday(10)))).json()
    await staff_client.post(f"/api/sessions/{session['id']}/outcome", json={"kind": "agreement", "terms": "互相道歉"})
    review = (await staff_client.post("/api/reviews", json={})).json()
    for lang, words in (("zh", ["回访", "调解协议模板", "每周矛盾纠纷研判", "统计", "审计日志"]),
                        ("en", ["Follow-up visits", "Agreement templates", "Weekly dispute reviews", "Statistics", "Audit log"])):
        for path, word in zip(PAGES, words):
            page = await admin.get(path, params={"lang": lang})
            assert page.status_code == 200, path
            assert word in page.text, (lang, path)
            assert not KEY.findall(page.text), (lang, path, KEY.findall(page.text))
        for path in (f"/sessions/{session['id']}", f"/reviews/{review['id']}", f"/disputes/{pool['dispute']['id']}"):
            page = await admin.get(path, params={"lang": lang})
            assert page.status_code == 200 and not KEY.findall(page.text), (lang, path, KEY.findall(page.text))
