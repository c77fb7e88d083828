"""Pages and files of signing: the documents to sign (待签材料) on a participant's phone, the seal
and the signed PDF it issues, the PDFs, the verification page, the judicial-confirmation package,
and the office's signing settings (seal upload with a preview, key, court).

Sealing renders a page, so it lives here and not in server/api: the host applies the seal (an
agreement) or finalises the application, then the document's PDF is made in the PDF process,
signed with the office's key (PAdES) and stored as issued; its download is that stored file.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import secrets
import zipfile
from typing import Any
from urllib.parse import quote

import segno
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from disputes.models import Evidence
from foundation.database import iso_utc, utcnow
from foundation.errors import Conflict, Forbidden, Invalid, NotFound, PayloadTooLarge
from outcomes import documents, pades, service, signing
from outcomes import jobs as outcome_jobs
from outcomes.models import IssuedPdf, OfficeSigning, Outcome, Signature, SignDocument
from scheduling import bookings, invites
from scheduling.models import MediationSession, Participant
from server.auth import current_staff, require_office_admin, require_staff, staff_identity
from server.http import ApiRoute, ok, path_id, transaction
from server.links import site_url
from server.pages.render import render, render_text
from web.i18n import local_time
from web.pdf import html_to_pdf, signed_pdf

TITLES = {"agreement": "人民调解协议书", "application": "司法确认申请书"}
MAX_VERIFY_BYTES = 20 * 1024 * 1024


def _kind(request: Request) -> str:
    kind = str(request.path_params.get("kind", "agreement"))
    if kind not in TITLES:
        raise NotFound("no document '{kind}'", kind=kind)
    return kind


async def _open(request: Request, db: AsyncSession) -> tuple[MediationSession, Participant | None]:
    """The session of a link (and its holder), or of the session page (staff)."""
    token = request.path_params.get("token")
    if token is not None:
        return await invites.open_invite(db, request.app.state.tokens, token)
    require_staff(request)
    return await bookings.load_session(db, path_id(request)), None


def _png(data: bytes | None) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode() if data else ""


async def _page_context(request: Request, db: AsyncSession, session: MediationSession, outcome: Outcome,
                        kind: str) -> dict[str, Any]:
    """What a document's PDF shows: its text, the signatures with their images, the seal, the
    signing log (签署记录), and the QR code of its verification page."""
    settings = request.app.state.settings
    papers = await service.paperwork(db, outcome, settings)
    if kind not in papers:
        raise NotFound("this document has not been prepared yet")
    paper = papers[kind]
    doc = await signing.document(db, outcome.id, kind)
    images = {s.id: _png(s.image_png) for s in await db.scalars(
        select(Signature).where(Signature.document_id == doc.id, Signature.version == doc.version))}
    office = await db.get(OfficeSigning, session.office_id) if session.office_id is not None else None
    tz = settings.timezone
    return {
        "title": TITLES[kind], "paper": paper, "images": images, "office": settings.office_name,
        "seal": _png(office.seal_png) if office is not None and kind == "agreement" and paper["sealed_at"] else "",
        "local": lambda value, fmt="%Y-%m-%d %H:%M:%S": local_time(value, tz, "zh", fmt),
        "document_names": documents.DOCUMENT_NAMES, "capacities": {"party": "当事人", "mediator": "人民调解员", "expert": "参与调解专家"},
    }


async def _issue(request: Request, session_id: int, kind: str) -> dict[str, Any]:
    """Make, sign and store the PDF of a sealed document's current version (once per version)."""
    settings = request.app.state.settings
    async with request.app.state.db_sessions() as db, db.begin():
        session = await bookings.load_session(db, session_id)
        outcome = await service.for_session(db, session_id)
        doc = await signing.document(db, outcome.id, kind)
        done = await db.scalar(select(IssuedPdf).where(IssuedPdf.document_id == doc.id, IssuedPdf.version == doc.version))
        if done is not None:
            return {"code": done.code, "sha256": done.sha256, "bytes": len(done.pdf)}
        context = await _page_context(request, db, session, outcome, kind)
        if not context["paper"]["sealed_at"]:
            raise Conflict("this document is not sealed yet")
        office = await _office_key(db, session.office_id, settings)
        version = doc.version
    code = secrets.token_urlsafe(12)
    verify_url = f"{site_url(request)}/verify/{code}"
    html = render_text(request, "document_pdf.html", **context, verify_url=verify_url,
                       qr=segno.make(verify_url, error="m").svg_inline(scale=2, title="验证此文件"))
    pdf = await signed_pdf(html, office.key_pem, office.cert_pem, settings.secret_key, f"{settings.office_name} {TITLES[kind]}")
    digest = hashlib.sha256(pdf).hexdigest()
    async with request.app.state.db_sessions() as db, db.begin():
        doc = await signing.document(db, outcome.id, kind)
        if doc.version != version:
            raise Conflict("the text has changed since you opened it: read it again before signing")
        db.add(IssuedPdf(document_id=doc.id, version=version, code=code, pdf=pdf, sha256=digest))
    return {"code": code, "sha256": digest, "bytes": len(pdf)}


async def _office_key(db: AsyncSession, office_id: int | None, settings: Any) -> OfficeSigning:
    """The office's signing key and certificate, made the first time it signs."""
    if office_id is None:
        raise Conflict("this session belongs to no office")
    row = await signing.office_signing(db, office_id)
    if not row.key_pem:
        row.key_pem, row.cert_pem = pades.new_key(settings.office_name, settings.secret_key)
        await db.flush()
    return row


async def seal(request: Request) -> Response:
    """The host applies the office's seal once every party and the mediator have signed (the
    agreement), or finalises the parties' application; the signed PDF is issued at once. Asked
    again after the PDF could not be made (no Pango), it only makes the PDF."""
    kind = _kind(request)
    settings = request.app.state.settings
    now = utcnow()
    async with transaction(request) as db:
        session, holder = await invites.open_invite(db, request.app.state.tokens, request.path_params["token"])
        if holder.kind != "host":
            raise Forbidden("only the host's side may do this")
        outcome = await service.for_session(db, session.id)
        await service.changed(db, session.id, settings)
        doc, text = (await service.texts(db, outcome, settings)).get(kind, (None, ""))
        if doc is None:
            raise NotFound("this document has not been prepared yet")
        state = await signing.state(db, session, doc, text)
        issued = await db.scalar(select(IssuedPdf.id).where(IssuedPdf.document_id == doc.id, IssuedPdf.version == doc.version))
        if kind == "application":
            state = {**state, "ready_to_seal": all(p["signed_at"] for p in state["signers"] if p["kind"] == "party")}
        if not (state["sealed_at"] and issued is None):
            await signing.seal(db, doc, state, session.office_id, holder.display_name, now)
    if kind == "agreement":
        outcome_jobs.schedule_judicial_reminder(request.app.state.jobs, outcome.id, documents.judicial_deadline(now))
    return ok(await _issue(request, session.id, kind), 201)


async def document_pdf(request: Request) -> Response:
    """A document's PDF: the signed one as issued, or while unsigned a draft (草稿, not valid)."""
    kind = _kind(request)
    async with transaction(request) as db:
        session, _holder = await _open(request, db)
        outcome = await service.for_session(db, session.id)
        doc = await signing.document(db, outcome.id, kind)
        issued = await db.scalar(select(IssuedPdf).where(IssuedPdf.document_id == doc.id, IssuedPdf.version == doc.version)
                                 .order_by(IssuedPdf.id.desc()).limit(1))
        context = None if issued is not None else await _page_context(request, db, session, outcome, kind)
    if issued is not None:
        pdf, name = issued.pdf, f"{TITLES[kind]}-{session.id}.pdf"
    else:
        assert context is not None
        pdf, name = await html_to_pdf(render_text(request, "document_pdf.html", **context, draft=True)), \
            f"{TITLES[kind]}-{session.id}-草稿.pdf"
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}", "Cache-Control": "private, no-store",
    })


async def sign_page(request: Request) -> Response:
    """The documents to sign (待签材料) from a participant's own link, on their phone."""
    settings = request.app.state.settings
    async with transaction(request) as db:
        session, holder = await _open(request, db)
        assert holder is not None
        outcome = await service.for_session(db, session.id)
        if outcome.kind != "agreement":
            raise NotFound("this session did not end in an agreement")
        papers = await service.paperwork(db, outcome, settings)
    return render(request, "sign.html", papers=papers, me=holder, token=request.path_params["token"], titles=TITLES,
                  tz=settings.timezone, document_names=documents.DOCUMENT_NAMES)


# ---- verification ------------------------------------------------------------------------------

async def _verdict(db: AsyncSession, issued: IssuedPdf | None) -> dict[str, Any]:
    """What the verification page says of an issued PDF: valid, superseded, or no longer valid.
    No personal data: the kind, the office, the version, when it was issued."""
    if issued is None:
        return {"found": False}
    doc = await db.get(SignDocument, issued.document_id)
    assert doc is not None
    status = "valid" if doc.version == issued.version and doc.sealed_at is not None else \
        "superseded" if doc.version != issued.version else "unsealed"
    return {"found": True, "status": status, "kind": doc.kind, "title": TITLES[doc.kind], "version": issued.version,
            "current_version": doc.version, "issued_at": iso_utc(issued.issued_at), "sha256": issued.sha256}


async def verify_page(request: Request) -> Response:
    """The page a PDF's QR code opens: is this document valid, or superseded?"""
    async with request.app.state.db_sessions() as db, db.begin():
        issued = await db.scalar(select(IssuedPdf).where(IssuedPdf.code == str(request.path_params["code"])[:32]))
        verdict = await _verdict(db, issued)
    return render(request, "verify.html", status_code=200 if verdict["found"] else 404, verdict=verdict,
                  tz=request.app.state.settings.timezone, checked=None)


async def check_file(sessions: Any, pdf: bytes) -> dict[str, Any]:
    """Check an uploaded PDF: its office signature (against every office's certificate) and
    whether it is a file this server issued, and if so whether it still holds."""
    async with sessions() as db, db.begin():
        certs = [c for c in await db.scalars(select(OfficeSigning.cert_pem).where(OfficeSigning.cert_pem != ""))]
        issued = await db.scalar(select(IssuedPdf).where(IssuedPdf.sha256 == hashlib.sha256(pdf).hexdigest()).limit(1))
        verdict = await _verdict(db, issued)
    check = await pades.verify(pdf, certs)
    outcome = "tampered" if check.signed and not check.intact else "changed" if check.signed and not check.whole_file else \
        "unsigned" if not check.signed else "untrusted" if not check.trusted else "intact"
    return {**verdict, "signature": outcome, "signer": check.signer,
            "signed_at": iso_utc(check.signed_at) if check.signed_at else None}


async def verify_upload(request: Request) -> Response:
    """Check a PDF file (the body): was it changed, and is it still the valid version?"""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_VERIFY_BYTES:
        raise PayloadTooLarge("the file is larger than the limit of {mb} MB", mb="20")
    body = await request.body()
    if len(body) > MAX_VERIFY_BYTES:
        raise PayloadTooLarge("the file is larger than the limit of {mb} MB", mb="20")
    if not body.startswith(b"%PDF"):
        raise Invalid("this is not a PDF file", field="file")
    return ok(await check_file(request.app.state.db_sessions, body))


# ---- the judicial-confirmation package ---------------------------------------------------------

async def judicial_package(request: Request) -> Response:
    """The application, the agreement (with the record) as signed, and the evidence list, as one archive."""
    require_staff(request)
    async with transaction(request) as db:
        session = await bookings.load_session(db, path_id(request))
        outcome = await service.for_session(db, session.id)
        files: dict[str, bytes] = {}
        for kind in TITLES:
            doc = await signing.document(db, outcome.id, kind)
            issued = await db.scalar(select(IssuedPdf).where(IssuedPdf.document_id == doc.id, IssuedPdf.version == doc.version))
            if issued is None:
                raise Conflict("sign and seal the agreement and the application first")
            files[f"{TITLES[kind]}.pdf"] = issued.pdf
        evidence = list(await db.scalars(select(Evidence).where(Evidence.dispute_id == session.dispute_id).order_by(Evidence.id)))
    listing = io.StringIO()
    writer = csv.writer(listing)
    writer.writerow(["序号", "文件名", "说明", "大小（字节）", "提交时间", "SHA-256"])
    for n, item in enumerate(evidence, 1):
        writer.writerow([n, item.filename, item.description, item.size_bytes,
                         local_time(iso_utc(item.created_at), request.app.state.settings.timezone, "zh"), item.sha256])
    files["证据清单.csv"] = ("\ufeff" + listing.getvalue()).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    name = quote(f"司法确认材料-{session.id}.zip")
    return Response(out.getvalue(), media_type="application/zip", headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{name}", "Cache-Control": "private, no-store"})


# ---- the office's seal and key -----------------------------------------------------------------

async def office_signing_page(request: Request) -> Response:
    """An office admin's page: the seal (upload, preview), the basic court, the signing key."""
    if current_staff(request) is None:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    admin = require_office_admin(request)
    async with transaction(request) as db:
        row = await db.get(OfficeSigning, admin.office_id)
    return render(request, "staff/office_signing.html", row=row, who=staff_identity(request))


async def seal_image(request: Request) -> Response:
    """The office's seal as uploaded (for the preview)."""
    staff = require_staff(request)
    async with transaction(request) as db:
        row = await db.get(OfficeSigning, staff.office_id) if staff.office_id is not None else None
    if row is None or row.seal_png is None:
        raise NotFound("the office has no seal yet")
    return Response(row.seal_png, media_type="image/png", headers={"Cache-Control": "private, no-store"})


routes = [
    Route("/join/{token}/agreement", sign_page),
    Route("/join/{token}/agreement.pdf", document_pdf),
    Route("/sessions/{id}/agreement.pdf", document_pdf),
    Route("/join/{token}/documents/{kind}.pdf", document_pdf),
    Route("/sessions/{id}/documents/{kind}.pdf", document_pdf),
    Route("/sessions/{id}/judicial-package.zip", judicial_package),
    Route("/verify/{code}", verify_page),
    Route("/office/signing", office_signing_page),
    Route("/office/seal.png", seal_image),
    ApiRoute("/api/join/{token}/documents/{kind}/seal", seal, methods=["POST"], tag="signing"),
    ApiRoute("/api/verify", verify_upload, methods=["POST"], tag="signing"),
]
