"""Outcomes in real Chromium: the host records an agreement from its template, both parties
sign it, the follow-up visit is recorded, the office edits a template."""
from __future__ import annotations

import re

from playwright.async_api import Browser
from sqlalchemy import select

from disputes.models import Party
from tests.conftest import Live, Running, add_staff
from tests.outcomes.test_signing import sign_as_party
from tests.web.browser import until
from tests.web.conftest import ARTIFACTS, staff_page


async def test_agreement_signed_and_followed_up_through_the_pages(browser: Browser, live: Live) -> None:
    await add_staff(Running(app=live.app, clients=[]), "office-admin", role="admin")  # the office's templates are its admin's
    staff = await staff_page(browser, live.base, "office-admin")
    await staff.goto(f"{live.base}/agreement-templates")
    await staff.fill("#template-animals", "一、{被申请人}遛狗拴绳，并向{申请人}赔礼道歉。")
    await staff.click("form[data-type=animals] button[type=submit]")
    await staff.wait_for_selector("form[data-type=animals] .tag")  # now the office's own

    session_id = live.session["id"]
    await staff.goto(f"{live.base}/sessions/{session_id}")
    await until(staff, "document.getElementById('outcome-terms').value.includes('李秀兰遛狗拴绳')")
    assert await staff.input_value("#outcome-terms") == "一、李秀兰遛狗拴绳，并向张建军赔礼道歉。"
    await staff.fill("#outcome-summary", "经专家团调解，双方和解。")
    await staff.click("#outcome-form button[type=submit]")
    await staff.wait_for_selector("#outcome")
    assert "等待当事人" in await staff.inner_text("#agreement-state")
    assert await staff.locator(".follow-ups li[data-follow-up]").count() == 2

    # Both parties sign (tests/web/test_signing_pages.py does it on a phone); the page says so.
    parties = [p for p in live.session["participants"] if p["kind"] == "party"]
    async with live.app.state.db_sessions() as db, db.begin():  # the codes go to the phones on the dispute
        for n, row in enumerate(await db.scalars(select(Party).order_by(Party.id))):
            row.phone = f"1390737020{n}"
    for n, party in enumerate(parties):
        await sign_as_party(live.app, live.staff, live.staff, session_id, live.token("party", n), party["id"])
    await staff.reload()
    for party in parties:
        assert "已于" in await staff.inner_text(f"#signers li[data-participant='{party['id']}']")
    await staff.screenshot(path=str(ARTIFACTS / "staff-outcome.png"), full_page=True)

    await staff.goto(f"{live.base}/follow-ups")
    first = staff.locator("li[data-follow-up]").first
    await first.locator(".follow-up-note").fill("双方相处融洽")
    await first.locator("button[data-result=kept]").click()
    await until(staff, "document.querySelectorAll('li[data-follow-up]').length === 1")
    dispute = (await live.staff.get(f"/api/disputes/{live.session['dispute_id']}")).json()
    assert dispute["status"] == "followed_up"

    # The review meeting: build this week's review from its page; the statistics page counts it.
    await staff.goto(f"{live.base}/reviews")
    await staff.click("#build-review")
    await staff.wait_for_url(re.compile(r".*/reviews/\d+$"))
    assert "宠物狗纠纷" in await staff.inner_text("main")
    await staff.screenshot(path=str(ARTIFACTS / "staff-weekly-review.png"), full_page=True)
    await staff.goto(f"{live.base}/statistics")
    assert await staff.inner_text("#resolution-rate") == "100.0%"
    await staff.screenshot(path=str(ARTIFACTS / "staff-statistics.png"), full_page=True)
    await staff.close()
