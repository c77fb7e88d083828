"""Every page a person opens, in real Chromium on the demo data: it renders, and in Chinese it
shows no untranslated English (text, placeholders, titles, error messages)."""
from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, Page
from sqlalchemy import select

from foundation.config import Settings
from outcomes.models import Outcome, WeeklyReview
from scheduling.models import MediationSession
from server.app import create_app
from server.demo import load_demo
from tests.conftest import STAFF_PASSWORD, Running, add_staff, free_port, token_of

# Words that are the same in a Chinese page: the language switch, file formats, brand names.
ALLOWED = {"English", "PDF", "CSV", "ICS", "Tiaojie", "WebM", "QR", "SMS", "IP", "ID", "Word", "Excel"}
WORD = re.compile(r"[A-Za-z][A-Za-z'’-]{2,}")
NOT_WORDS = re.compile(r"\S+@\S+|https?://\S+|/\S*|\b[\w-]+\.(?:jpg|png|pdf|ics|csv)\b|\d{1,2}:\d{2}")

# Stored records and device names (marked translate="no") are data, not messages.
_VISIBLE_TEXT = """() => {
  for (const el of document.querySelectorAll('[translate=no]')) el.style.display = 'none';
  const parts = [document.title, document.body.innerText];
  for (const el of document.querySelectorAll('[placeholder],[title],[aria-label]')) {
    if (el.offsetParent === null && el.tagName !== 'BODY') continue;
    parts.push(el.getAttribute('placeholder') || '', el.getAttribute('title') || '', el.getAttribute('aria-label') || '');
  }
  for (const el of document.querySelectorAll('select:not([translate=no]) option')) parts.push(el.textContent);
  return parts.join('\\n');
}"""


def english_words(text: str) -> set[str]:
    """The English-looking words of a text, less addresses, paths, file names and allowed words."""
    return {w for w in WORD.findall(NOT_WORDS.sub(" ", text)) if w not in ALLOWED}


class Demo:
    def __init__(self, base: str, app: object) -> None:
        self.base = base
        self.app = app


@pytest.fixture
async def demo(settings: Settings) -> AsyncIterator[Demo]:
    """A real server on loopback with the demo data and a staff login (staff1, an admin)."""
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    async with app.state.db_sessions() as db, db.begin():
        await load_demo(db)
    await add_staff(Running(app=app, clients=[]), role="admin")
    yield Demo(f"http://127.0.0.1:{port}", app)
    server.should_exit = True
    await task


async def _ids(app: object) -> dict[str, int]:
    async with app.state.db_sessions() as db:  # type: ignore[attr-defined]
        agreement = await db.scalar(select(Outcome.session_id).where(Outcome.kind == "agreement").limit(1))
        upcoming = await db.scalar(select(MediationSession.id).where(MediationSession.status == "confirmed")
                                   .order_by(MediationSession.start.desc()).limit(1))
        review = await db.scalar(select(WeeklyReview.id).limit(1))
        dispute = await db.scalar(select(MediationSession.dispute_id).where(MediationSession.id == agreement))
    return {"agreement": agreement, "upcoming": upcoming, "review": review, "dispute": dispute}


async def _check(page: Page, url: str, seen: dict[str, set[str]]) -> None:
    response = await page.goto(url)
    assert response is not None and response.status < 500, f"{url} answered {response and response.status}"
    headers = response.headers
    assert "frame-ancestors 'none'" in headers.get("content-security-policy", "") and "script-src 'self'" in headers["content-security-policy"], url
    assert headers.get("x-content-type-options") == "nosniff" and headers.get("referrer-policy") == "no-referrer", url
    await page.wait_for_load_state("networkidle")
    words = english_words(await page.evaluate(_VISIBLE_TEXT))
    if words:
        seen[url] = words


async def test_every_page_in_chinese_has_no_english(browser: Browser, demo: Demo) -> None:
    ids = await _ids(demo.app)
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = await context.new_page()
    refused: list[str] = []  # what the Content-Security-Policy blocked: an inline script or style left somewhere
    page.on("console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None)
    seen: dict[str, set[str]] = {}
    for url in ("/login", "/expert/login", "/join/not-a-token", "/nowhere"):
        await _check(page, demo.base + url, seen)
    await page.goto(f"{demo.base}/login")
    await page.fill("#username", "staff1")
    await page.fill("#password", STAFF_PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{demo.base}/")
    staff_pages = [
        "/", "/disputes", "/disputes/new", f"/disputes/{ids['dispute']}", f"/disputes/{ids['dispute']}/book",
        f"/sessions/{ids['agreement']}", f"/sessions/{ids['upcoming']}", f"/sessions/{ids['agreement']}/agreement",
        "/experts", "/follow-ups", "/agreement-templates", "/reviews", f"/reviews/{ids['review']}",
        "/statistics", "/audit", "/accounts", "/disputes/999999", "/statistics?from=2026-13-01",
    ]
    for url in staff_pages:
        await _check(page, demo.base + url, seen)
    await page.goto(f"{demo.base}/experts")
    assert await page.locator("td:has-text('@jinshan.example.cn')").count() == 20, "the expert pool lists e-mails"
    assert await page.locator("td:has-text('13807370019')").count() == 1, "and phone numbers"

    async with httpx.AsyncClient(base_url=demo.base, cookies={c['name']: c['value'] for c in await context.cookies()}) as staff:
        session = (await staff.get(f"/api/sessions/{ids['upcoming']}")).json()
    party = token_of(session, "party")
    for url in (f"/join/{party}", f"/join/{party}/agreement"):
        await _check(page, demo.base + url, seen)
    await context.close()
    assert not seen, f"English words on Chinese pages: {seen}"
    assert not refused, refused
