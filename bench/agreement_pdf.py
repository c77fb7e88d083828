"""Benchmark: making agreement PDFs while the server goes on serving. One run, every way.

Takes a real agreement through the whole signing chain (identity checked, codes, both parties'
and the mediator's drawn signatures, the seal) and catches the HTML of the PDF the seal issues
(web/templates/document_pdf.html, with the signature images, the seal and 签署记录). Renders it
CONCURRENT at a time, ROUNDS times, while a ticker on the same event loop measures how late its
10 ms sleeps wake (what every request and every room of the process waits):

1. in a thread (anyio.to_thread, how PDFs were made before): WeasyPrint holds the GIL;
2. in the PDF process (web/pdf.py html_to_pdf, as drafts are made), each page different so
   that nothing is served from the PDFs kept;
3. the same pages again from the PDFs kept;
4. signed with the office's key (PAdES, web/pdf.py signed_pdf), as the seal issues them.

Prints for each: seconds per PDF (wall clock over the batch), the event loop's lateness p50,
p99 and max, the ratios against the thread, and the PDF's size.

    .venv/bin/python bench/agreement_pdf.py [--concurrent 8] [--rounds 3]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from foundation.config import Settings  # noqa: E402
from foundation.database import upgrade_database  # noqa: E402
from server.pages import signing as web_signing  # noqa: E402
from tests.conftest import add_staff, log_in, started, token_of  # noqa: E402
from tests.outcomes.test_signing import drawing, seal_png, sign_as_party  # noqa: E402
from web import pdf  # noqa: E402

TICK_S = 0.01


async def agreement_page() -> tuple[str, tuple[str, str, str]]:
    """The HTML of a real signed and sealed agreement as the seal renders it for its PDF, and the
    office's key, certificate and the server's secret."""
    settings = Settings(data_dir=Path(tempfile.mkdtemp()), secret_key="bench", base_url="http://bench")
    upgrade_database(settings.database_url)
    async with started(settings) as running:
        await add_staff(running)
        await add_staff(running, "bench-admin", role="admin")
        staff = await log_in(running)
        admin = await log_in(running, "bench-admin")
        experts = [(await staff.post("/api/experts", json={"name": f"专家{n}", "role": role, "email": f"b{n}@bench.cn"})).json()
                   for n, role in enumerate(("legal_officer", "lawyer", "governance_specialist"))]
        dispute = (await staff.post("/api/disputes", json={
            "title": "宠物狗咬伤邻居纠纷", "dispute_type": "animals", "place": "金山社区3栋",
            "cause": "李秀兰饲养的犬只未拴绳，咬伤张建军小腿", "development": "双方多次争吵，张建军要求赔偿医疗费",
            "parties": [{"name": "张建军", "side": "applicant", "phone": "13807370001"},
                        {"name": "李秀兰", "side": "respondent", "phone": "13807370002"}]})).json()
        start = "2027-01-04T10:00:00+08:00"
        session = (await staff.post("/api/sessions", json={
            "dispute_id": dispute["id"], "start": start, "end": "2027-01-04T11:00:00+08:00",
            "experts": [{"expert_id": e["id"]} for e in experts], "override_availability": True})).json()
        terms = ("一、李秀兰于2026年12月20日前一次性赔偿张建军医疗费、误工费共计人民币2800元。\n"
                 "二、李秀兰今后遛狗必须拴绳，及时清理粪便，并为犬只办理登记、接种疫苗。\n"
                 "三、本协议履行完毕后，双方就此纠纷再无其他争议。")
        await staff.put(f"/api/sessions/{session['id']}/record", json={"text": "主持人宣布调解纪律。" * 40, "revision": 0})
        await staff.post(f"/api/sessions/{session['id']}/outcome", json={"kind": "agreement", "terms": terms})
        client = running.client()
        for n, party in enumerate(p for p in session["participants"] if p["kind"] == "party"):
            await sign_as_party(running.app, client, staff, session["id"], token_of(session, "party", n), party["id"])
        host = token_of(session, "host")
        sha = (await client.get(f"/api/join/{host}/documents")).json()["documents"]["agreement"]["text_sha256"]
        await client.post(f"/api/join/{host}/documents/agreement/sign", json={"text_sha256": sha, "signature": drawing()})
        await admin.put("/api/office/seal", content=seal_png())
        # The HTML the seal renders for its PDF, caught on its way to the PDF process.
        caught: list[tuple[str, ...]] = []

        async def catch(html: str, *key: str) -> bytes:
            caught.append((html, *key))
            return await pdf.signed_pdf(html, *key)

        web_signing.signed_pdf = catch
        response = await client.post(f"/api/join/{host}/documents/agreement/seal")
        assert response.status_code == 201 and caught, response.text
    html, key_pem, cert_pem, secret, _reason = caught[0]
    return html, (key_pem, cert_pem, secret)


async def measure(name: str, make: Callable[[int], Awaitable[bytes]], concurrent: int, rounds: int) -> dict[str, float]:
    """Make concurrent*rounds PDFs `concurrent` at a time while the ticker runs; the figures."""
    late: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            asked = time.perf_counter()
            await asyncio.sleep(TICK_S)
            late.append((time.perf_counter() - asked - TICK_S) * 1000)

    ticking = asyncio.create_task(ticker())
    size = 0
    began = time.perf_counter()
    for round_ in range(rounds):
        made = await asyncio.gather(*(make(round_ * concurrent + n) for n in range(concurrent)))
        size = len(made[-1])
    elapsed = time.perf_counter() - began
    done.set()
    await ticking
    late.sort()
    figures = {"per_pdf_s": elapsed / (concurrent * rounds), "p50_ms": statistics.median(late),
               "p99_ms": late[int(len(late) * 0.99) - 1], "max_ms": late[-1], "kb": size / 1024}
    print(f"{name:<26} {figures['per_pdf_s']:7.3f} s/PDF   event loop late p50 {figures['p50_ms']:6.1f} ms"
          f"  p99 {figures['p99_ms']:7.1f} ms  max {figures['max_ms']:7.1f} ms   {figures['kb']:.0f} KB", flush=True)
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrent", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    html, (key_pem, cert_pem, secret) = await agreement_page()

    def page(n: int) -> str:  # each PDF a different page: nothing is served from the PDFs kept
        return html.replace("</body>", f"<!-- {n} --></body>")

    pdf.render(page(-1))  # fonts loaded in this process too: both ways start warm
    await pdf.html_to_pdf(page(-2))
    thread = await measure("in a thread (before)", lambda n: anyio.to_thread.run_sync(pdf.render, page(n)),
                           args.concurrent, args.rounds)
    process = await measure("in the PDF process (now)", lambda n: pdf.html_to_pdf(page(1000 + n)), args.concurrent, args.rounds)
    newest = 1000 + args.concurrent * args.rounds - 1  # among the PDFs kept
    kept = await measure("kept (asked again)", lambda n: pdf.html_to_pdf(page(newest - n % pdf.KEEP)), args.concurrent, args.rounds)
    signed = await measure("signed, as the seal issues", lambda n: pdf.signed_pdf(page(2000 + n), key_pem, cert_pem, secret, "bench"),
                           args.concurrent, args.rounds)
    print(f"signed / unsigned in the PDF process: time per PDF {signed['per_pdf_s'] / process['per_pdf_s']:.2f}x, "
          f"size {signed['kb'] / process['kb']:.2f}x")
    for name, figures in (("process", process), ("kept", kept), ("signed", signed)):
        print(f"{name} / thread: time per PDF {figures['per_pdf_s'] / thread['per_pdf_s']:.2f}x, "
              f"event loop late p99 {figures['p99_ms'] / thread['p99_ms']:.3f}x, max {figures['max_ms'] / thread['max_ms']:.3f}x")


if __name__ == "__main__":
    asyncio.run(main())
