"""Routes for the record of a session, identity checks, one-time codes and signatures.

The host's side (the host's link, or staff on the session page) writes the record and checks
identities; each party signs from their own link with a code sent to their phone; the host
signs as the mediator from their link (the session page gives the staff member a fresh one).
The seal, the signed PDFs and the verification page are in server/pages/signing.py (they render pages).
"""
from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from foundation.database import utcnow
from foundation.errors import AppError, Conflict, Forbidden, NotFound
from outcomes import documents, service, signing
from outcomes.models import Outcome
from outcomes.schemas import AmendIn, IdentityIn, OfficeSigningIn, RecordIn, SignIn
from scheduling import bookings, invites
from scheduling.models import MediationSession, Participant
from server.auth import require_office_admin, require_staff, staff_identity
from server.http import ApiRoute, is_number, ok, path_id, read_json, transaction

KINDS = ("agreement", "application")


def _kind(request: Request) -> str:
    kind = request.path_params["kind"]
    if kind not in KINDS:
        raise NotFound("no document '{kind}'", kind=kind)
    return str(kind)


async def _by_link(request: Request, db: AsyncSession) -> tuple[MediationSession, Participant]:
    return await invites.open_invite(db, request.app.state.tokens, request.path_params["token"])


def _staff_name(request: Request, staff_id: int) -> str:
    return staff_identity(request)[0] or f"staff:{staff_id}"


def _host(participant: Participant) -> Participant:
    if participant.kind != "host":
        raise Forbidden("only the host's side may do this")
    return participant


async def _outcome(db: AsyncSession, session: MediationSession) -> Outcome:
    return await service.for_session(db, session.id)


# ---- the record -------------------------------------------------------------------------------

async def _save_record(request: Request, session: MediationSession, db: AsyncSession, by: str) -> Response:
    data = await read_json(request, RecordIn)
    saved = await documents.save_record(db, session, data.text, data.revision, by)
    voided = await service.changed(db, session.id, request.app.state.settings)
    return ok({**saved, "voided": voided})


async def staff_record(request: Request) -> Response:
    """The record of a session (GET), or staff write it after the session (PUT)."""
    staff = require_staff(request)
    async with transaction(request) as db:
        session = await bookings.load_session(db, path_id(request))
        if request.method == "PUT":
            return await _save_record(request, session, db, _staff_name(request, staff.id))
        return ok(await documents.record_view(db, session, request.app.state.settings.timezone))


async def link_record(request: Request) -> Response:
    """The record from the host's link: read it with the parties' identity checks, or save it
    (the room's pane autosaves here)."""
    async with transaction(request) as db:
        session, participant = await _by_link(request, db)
        host = _host(participant)
        if request.method == "PUT":
            return await _save_record(request, session, db, host.display_name)
        return ok({**await documents.record_view(db, session, request.app.state.settings.timezone),
                   "parties": await signing.identities(db, session)})


async def amend_outcome(request: Request) -> Response:
    """Correct an agreement's terms or summary: every signature of the old text is void, and
    those who signed are told."""
    require_staff(request)
    data = await read_json(request, AmendIn)
    async with transaction(request) as db:
        result = await service.amend(db, path_id(request), data, request.app.state.settings)
    request.app.state.deliverer.kick()
    return ok(result)


# ---- identity ---------------------------------------------------------------------------------

def _participant_id(request: Request) -> int:
    raw = str(request.path_params["participant"])
    if not is_number(raw):
        raise NotFound("no such participant")
    return int(raw)


async def staff_check_identity(request: Request) -> Response:
    """Staff mark a party's identity as checked (from the session page)."""
    staff = require_staff(request)
    data = await read_json(request, IdentityIn)
    async with transaction(request) as db:
        session = await bookings.load_session(db, path_id(request))
        return ok(await signing.check_identity(db, session, _participant_id(request), document_type=data.document_type,
                                               number=data.number, by=_staff_name(request, staff.id)))


async def link_check_identity(request: Request) -> Response:
    """The host marks a party's identity as checked, from the room."""
    data = await read_json(request, IdentityIn)
    async with transaction(request) as db:
        session, participant = await _by_link(request, db)
        host = _host(participant)
        return ok(await signing.check_identity(db, session, _participant_id(request), document_type=data.document_type,
                                               number=data.number, by=host.display_name))


# ---- documents, codes, signatures -------------------------------------------------------------

async def link_documents(request: Request) -> Response:
    """The documents to sign (待签材料) as this link's holder sees them: the texts and who signed."""
    async with transaction(request) as db:
        session, participant = await _by_link(request, db)
        papers = await service.paperwork(db, await _outcome(db, session), request.app.state.settings)
    return ok({"participant_id": participant.id, "kind": participant.kind, "documents": papers})


async def send_code(request: Request) -> Response:
    """Send the party a one-time code to their phone (a new one at most once a minute)."""
    kind = _kind(request)
    settings = request.app.state.settings
    async with transaction(request) as db:
        session, participant = await _by_link(request, db)
        outcome = await _outcome(db, session)
        await service.changed(db, session.id, settings)
        doc = await signing.document(db, outcome.id, kind)
        dispute_title = (await documents.context(db, outcome, settings.office_name, settings.timezone)).dispute.title
        result = await signing.send_code(db, session, doc, participant, secret=settings.secret_key,
                                         office_name=settings.office_name, title=dispute_title,
                                         shown=not settings.sms_provider, now=utcnow())
    request.app.state.deliverer.kick()
    return ok(result, 201)


async def _sign(request: Request, db: AsyncSession, session: MediationSession, signer: Participant,
                data: SignIn) -> dict[str, object] | AppError:
    settings = request.app.state.settings
    outcome = await _outcome(db, session)
    await service.changed(db, session.id, settings)
    doc, text = (await service.texts(db, outcome, settings)).get(_kind(request), (None, ""))
    if doc is None:
        raise NotFound("this document has not been prepared yet")
    return await signing.sign(db, session, doc, signer, text, signing.Signing(
        text_sha256=data.text_sha256, drawing=data.signature, code=data.code,
        ip=request.client.host if request.client else "", user_agent=request.headers.get("user-agent", ""),
    ), secret=settings.secret_key, now=utcnow())


def _signed(result: dict[str, object] | AppError) -> Response:
    """A signature's answer; a refused code is raised only now, after its try was counted."""
    if isinstance(result, AppError):
        raise result
    return ok(result, 201)


async def link_sign(request: Request) -> Response:
    """Sign a document from one's own link: a party with the code, the host as mediator, an expert."""
    data = await read_json(request, SignIn)
    async with transaction(request) as db:
        session, participant = await _by_link(request, db)
        result = await _sign(request, db, session, participant, data)
    return _signed(result)


async def prepare_application(request: Request) -> Response:
    """Staff prepare the parties' joint application for judicial confirmation, once the
    agreement is signed and sealed; the parties then sign it the same way."""
    require_staff(request)
    settings = request.app.state.settings
    async with transaction(request) as db:
        outcome = await service.for_session(db, path_id(request))
        view = await service.view(db, outcome, settings)
        if not view["complete"]:
            raise Conflict("the agreement must be signed and sealed first")
        ctx = await documents.context(db, outcome, settings.office_name, settings.timezone)
        agreement = await signing.document(db, outcome.id, "agreement")
        assert agreement.sealed_at is not None
        await signing.start_document(db, outcome.id, "application", documents.application_text(ctx, agreement.sealed_at))
        return ok(await service.view(db, outcome, settings), 201)


# ---- the office's seal and settings -----------------------------------------------------------

async def upload_seal(request: Request) -> Response:
    """An office admin uploads the office's seal (PNG or JPEG, the file as the body)."""
    admin = require_office_admin(request)
    raw = await request.body()
    png = signing.check_seal(raw)
    async with transaction(request) as db:
        row = await signing.office_signing(db, admin.office_id)
        row.seal_png, row.seal_updated_at = png, utcnow()
    return ok({"seal": True, "bytes": len(png)})


async def office_settings(request: Request) -> Response:
    """An office admin sets the basic court and whether identity checks keep the full number."""
    admin = require_office_admin(request)
    data = await read_json(request, OfficeSigningIn)
    async with transaction(request) as db:
        row = await signing.office_signing(db, admin.office_id)
        row.court, row.full_id_numbers = data.court.strip(), data.full_id_numbers
    return ok({"court": data.court.strip(), "full_id_numbers": data.full_id_numbers})


routes = [
    ApiRoute("/api/sessions/{id}/record", staff_record, methods=["GET"], tag="signing"),
    ApiRoute("/api/sessions/{id}/record", staff_record, methods=["PUT"], body=RecordIn, tag="signing"),
    ApiRoute("/api/join/{token}/record", link_record, methods=["GET"], tag="signing"),
    ApiRoute("/api/join/{token}/record", link_record, methods=["PUT"], body=RecordIn, tag="signing"),
    ApiRoute("/api/sessions/{id}/outcome", amend_outcome, methods=["PATCH"], body=AmendIn, tag="signing"),
    ApiRoute("/api/sessions/{id}/participants/{participant}/identity", staff_check_identity, methods=["POST"], body=IdentityIn, tag="signing"),
    ApiRoute("/api/join/{token}/identity/{participant}", link_check_identity, methods=["POST"], body=IdentityIn, tag="signing"),
    ApiRoute("/api/join/{token}/documents", link_documents, methods=["GET"], tag="signing"),
    ApiRoute("/api/join/{token}/documents/{kind}/code", send_code, methods=["POST"], tag="signing"),
    ApiRoute("/api/join/{token}/documents/{kind}/sign", link_sign, methods=["POST"], body=SignIn, tag="signing"),
    ApiRoute("/api/sessions/{id}/application", prepare_application, methods=["POST"], tag="signing"),
    ApiRoute("/api/office/seal", upload_seal, methods=["PUT"], tag="signing"),
    ApiRoute("/api/office/signing", office_settings, methods=["PUT"], body=OfficeSigningIn, tag="signing"),
]
