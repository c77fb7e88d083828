"""Staff console and expert portal in real Chromium: book through the pages, edit availability."""
from __future__ import annotations

import json
import re

from playwright.async_api import Browser

from tests.conftest import STAFF_PASSWORD, Live, Running, add_staff
from tests.web.browser import until
from tests.web.conftest import ARTIFACTS, staff_page

ALL_WEEK = {"windows": [{"weekday": d, "start": "08:00", "end": "20:00"} for d in range(7)]}


async def test_staff_registers_and_books_through_the_pages(browser: Browser, live: Live) -> None:
    for n, role in enumerate(("legal_officer", "lawyer", "governance_specialist")):
        expert = (await live.staff.post("/api/experts", json={"name": f"页面专家{n}", "role": role, "email": f"page{n}@e.cn", "priority": 1})).json()
        assert (await live.staff.put(f"/api/experts/{expert['id']}/availability", json=ALL_WEEK)).status_code == 200

    page = await browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    await page.goto(f"{live.base}/disputes")
    assert page.url.endswith("/login?next=/disputes")
    await page.fill("#username", "staff1")
    await page.fill("#password", STAFF_PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{live.base}/disputes")

    await page.goto(f"{live.base}/disputes/new")
    await page.fill("#title", "楼上漏水引发邻里矛盾")
    await page.select_option("#dispute_type", "neighbour")
    await page.select_option("#risk_level", "medium")
    await page.fill("#place", "金山社区5栋")
    await page.fill(".party-row[data-side=applicant] [name=party_name]", "周建华")
    await page.fill(".party-row[data-side=respondent] [name=party_name]", "吴美玲")
    await page.click("#dispute-form button[type=submit]")
    await page.wait_for_selector("#form-status:has-text('已保存')", timeout=10000)
    assert re.fullmatch(r".*/disputes/\d+\?saved=1", page.url)
    assert "楼上漏水引发邻里矛盾" in await page.inner_text("h1")
    await page.fill("#new-party [name=party_name]", "吴志强")
    await page.select_option("#new-party [name=party_side]", "respondent")
    await page.click("#add-party")
    await page.wait_for_selector("#party-list:has-text('吴志强')")

    await page.click("text=预约专家调解")
    await page.wait_for_url("**/book")
    await page.click("#search-form button[type=submit]")
    await page.wait_for_selector("#slots li", timeout=10000)
    first = await page.inner_text("#slots li")
    assert "页面专家0" in first and "页面专家1" in first and "页面专家2" in first
    await page.click("#slots li >> text=选定此时间")
    await page.wait_for_url(re.compile(r".*/sessions/\d+$"))
    participants = await page.inner_text("#participants")
    for name in ("周建华", "吴美玲", "吴志强", "页面专家0", "页面专家1", "页面专家2"):
        assert name in participants
    assert await page.locator(".qr svg").count() == 3  # a QR code for each party's phone
    await page.screenshot(path=str(ARTIFACTS / "staff-session.png"), full_page=True)

    await page.goto(f"{live.base}/")
    assert "楼上漏水引发邻里矛盾" in await page.inner_text("main")
    await page.screenshot(path=str(ARTIFACTS / "staff-console.png"), full_page=True)
    await page.close()


async def test_expert_edits_availability_in_the_portal(browser: Browser, live: Live) -> None:
    expert = (await live.staff.post("/api/experts", json={"name": "门户专家", "role": "lawyer", "email": "portal@e.cn"})).json()
    token = live.app.state.tokens.magic_link(expert["id"])
    page = await browser.new_page(locale="zh-CN")
    await page.goto(f"{live.base}/expert/login?token={token}")
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{live.base}/expert")
    for label in ("周二 09:00", "周二 09:30", "周二 10:00", "周五 14:00"):
        await page.click(f"#week button[aria-label='{label}']")
    await page.fill("#override-date", "2027-01-04")
    await page.click("#add-override")
    await page.click("#save-availability")
    await page.wait_for_selector("#availability-status:has-text('已保存')")
    saved = (await live.staff.get(f"/api/experts/{expert['id']}/availability")).json()
    assert saved["windows"] == [
        {"weekday": 1, "start": "09:00", "end": "10:30"},
        {"weekday": 4, "start": "14:00", "end": "14:30"},
    ]
    assert saved["overrides"] == [{"date": "2027-01-04", "start": None, "end": None, "note": ""}]
    await page.screenshot(path=str(ARTIFACTS / "expert-portal.png"), full_page=True)
    # The portal has a way out: back to the experts' sign-in, and the portal is closed.
    await page.click("header form button[type=submit]")
    await page.wait_for_url(f"{live.base}/expert/login")
    await page.goto(f"{live.base}/expert")
    assert page.url.endswith("/expert/login")
    await page.close()


async def test_unknown_pages_show_an_error_page(live: Live) -> None:
    for url in ("/disputes/99999", "/sessions/99999", "/disputes/99999/book"):
        response = await live.staff.get(url)
        assert response.status_code == 404 and "<html" in response.text and "99999" in response.text


async def test_a_closed_dispute_offers_no_booking_but_registering_it_again(browser: Browser, live: Live) -> None:
    dispute = (await live.staff.post("/api/disputes", json={
        "title": "转办后退回的土地纠纷", "dispute_type": "land", "risk_level": "low",
        "parties": [{"name": "赵大山", "side": "applicant"}, {"name": "钱小河", "side": "respondent"}]})).json()
    moved = await live.staff.post(f"/api/disputes/{dispute['id']}/status", json={"status": "referred"})
    assert moved.json()["bookable"] is False and moved.json()["reopenable"] is True
    page = await staff_page(browser, live.base)
    await page.goto(f"{live.base}/disputes")
    row = page.locator("tr", has_text="转办后退回的土地纠纷")
    assert "已移交" in await row.inner_text() and await row.locator("text=预约专家调解").count() == 0
    await page.goto(f"{live.base}/disputes/{dispute['id']}/book")  # an old bookmark: told why, no form
    assert "请先重新登记" in await page.inner_text("main") and await page.locator("#search-form").count() == 0

    await page.goto(f"{live.base}/disputes/{dispute['id']}")
    assert await page.locator("text=预约专家调解").count() == 0
    await page.click("#reopen")
    await page.wait_for_selector("a:has-text('预约专家调解')", timeout=10000)
    assert (await live.staff.get(f"/api/disputes/{dispute['id']}")).json()["status"] == "registered"
    await page.context.close()


async def test_office_pages_read_as_the_office_does(browser: Browser, live: Live) -> None:
    """One time format with the weekday, the audit log in Chinese and local time, 已保存 after
    registering, the session page within a phone's width, and the slots asked again after a
    booking lost to another clerk."""
    page = await staff_page(browser, live.base)
    await page.goto(f"{live.base}/disputes/new")
    await page.fill("#title", "装修噪音纠纷")
    await page.fill(".party-row[data-side=applicant] [name=party_name]", "孙立")
    await page.fill(".party-row[data-side=applicant] [name=party_phone]", "13807371234")
    await page.click("#dispute-form button[type=submit]")
    await page.wait_for_selector("#form-status:has-text('已保存')", timeout=10000)
    assert page.url.endswith("?saved=1")
    dispute_id = int(page.url.split("/disputes/")[1].split("?")[0])

    await page.goto(f"{live.base}/")
    today = await page.inner_text("main table")  # the fixture's session, today: 2026-12-05（周六）13:04
    assert re.search(r"\d{4}-\d{2}-\d{2}（周[一二三四五六日]）\d{2}:\d{2}", today), today

    phone = await browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844}, device_scale_factor=3,
                                      is_mobile=True, has_touch=True)
    await phone.add_cookies(await page.context.cookies())
    small = await phone.new_page()
    await small.goto(f"{live.base}/sessions/{live.session['id']}")
    assert "通知类型" in await small.inner_text("#notifications")  # the table has its headers
    assert await small.evaluate("document.documentElement.scrollWidth") <= 390
    await phone.close()

    for n, role in enumerate(("legal_officer", "lawyer", "governance_specialist")):
        expert = (await live.staff.post("/api/experts", json={"name": f"抢约专家{n}", "role": role, "email": f"race{n}@e.cn"})).json()
        await live.staff.put(f"/api/experts/{expert['id']}/availability", json=ALL_WEEK)
    await page.goto(f"{live.base}/disputes/{dispute_id}/book")
    await page.click("#search-form button[type=submit]")
    await page.wait_for_selector("#slots li", timeout=10000)
    first = await page.inner_text("#slots li")
    # Another clerk books the first time's panel meanwhile.
    slots = (await live.staff.post("/api/scheduling/search", json={
        "dispute_id": dispute_id, "panel": {"seats": [{"role": r} for r in ("legal_officer", "lawyer", "governance_specialist")]},
        "duration_min": 60, "limit": 1})).json()
    taken = await live.staff.post("/api/sessions", json={
        "dispute_id": dispute_id, "start": slots[0]["start"], "end": slots[0]["end"],
        "experts": [{"expert_id": seat["expert"]["id"]} for seat in slots[0]["seats"] if seat["expert"]]})
    assert taken.status_code == 201, taken.text
    await page.click("#slots li >> text=选定此时间")
    await page.wait_for_selector("#book-status.error", timeout=10000)
    await until(page, f"document.querySelector('#slots li').innerText !== {json.dumps(first)}", 10)
    assert "抢约专家" in await page.inner_text("#book-status")  # the 409 names who is taken

    await add_staff(Running(app=live.app, clients=[]), "admin1", role="admin")
    admin_page = await staff_page(browser, live.base, username="admin1")
    await admin_page.goto(f"{live.base}/audit?entity=disputes&entity_id={dispute_id}")
    log = await admin_page.inner_text("table.audit")
    assert "名称" in log and "装修噪音纠纷" in log and "风险等级" in log and "None" not in log
    assert re.search(r"\d{4}-\d{2}-\d{2}（周[一二三四五六日]）\d{2}:\d{2}", log) and "+00:00" not in log
    await admin_page.context.close()
    await page.context.close()


async def test_an_office_admin_adds_and_disables_an_account_on_the_accounts_page(browser: Browser, live: Live) -> None:
    await add_staff(Running(app=live.app, clients=[]), "office-admin", role="admin")
    await add_staff(Running(app=live.app, clients=[]), "elsewhere", office="朝阳警务室")
    admin = await staff_page(browser, live.base, "office-admin")
    await admin.click("nav a[href='/accounts']")
    await admin.wait_for_selector("#account-form")
    assert "elsewhere" not in await admin.inner_text("#accounts")  # another office's account is not theirs to manage
    # An office admin adds clerks and admins to their own office only: no other role, no other office.
    assert await admin.locator("#account-form select[name=role] option").all_inner_texts() == ["调解员", "单位管理员"]
    assert await admin.locator("#account-form select[name=office_id] option").count() == 1
    assert await admin.locator("#office-form").count() == 0  # offices are the system administrator's

    await admin.fill("#account-form input[name=username]", "wang.li")
    await admin.fill("#account-form input[name=display_name]", "王丽")
    await admin.fill("#account-form input[name=password]", "short")
    await admin.click("#account-form button[type=submit]")
    assert await admin.evaluate("document.querySelector('#account-form input[name=password]').validity.valid") is False
    await admin.fill("#account-form input[name=password]", "新同事的初始密码2026")
    await admin.click("#account-form button[type=submit]")
    row = admin.locator("#accounts tr", has_text="wang.li")
    await row.wait_for()
    assert "王丽" in await row.inner_text() and "调解员" in await row.inner_text() and "启用" in await row.inner_text()
    # The same user name again is refused with the reason, in Chinese.
    await admin.fill("#account-form input[name=username]", "wang.li")
    await admin.fill("#account-form input[name=password]", "新同事的初始密码2026")
    await admin.click("#account-form button[type=submit]")
    await admin.wait_for_selector("#account-status.error")
    assert "wang.li" in await admin.inner_text("#account-status") and "已被使用" in await admin.inner_text("#account-status")

    await row.locator("button.account-active").click()
    await admin.locator("#accounts tr", has_text="wang.li").locator("text=已停用").wait_for()
    refused = await live.staff.post("/api/auth/login", json={"username": "wang.li", "password": "新同事的初始密码2026"})
    assert refused.status_code == 401
