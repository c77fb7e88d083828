"""Signing an outcome's documents: the identity check, the one-time code, the signatures, the
seal, and the rule that a change to the text voids every signature of it.

A document is the agreement (人民调解协议书 with the session's record, 调解笔录) or the joint
application for judicial confirmation (司法确认申请书). Its text is built from the case as it is
now (`texts.py`); what people sign is the SHA-256 of that exact text. Whenever the text changes
after someone signed it, `text_changed` moves the document to a new version: the signatures of
the old one are void (kept, shown as void), the seal is lifted, and each signer is told.

Parties sign from their own link after the host checked their identity document on camera and
with a one-time code sent to the phone on the dispute; the host signs as the people's mediator
(人民调解员) and each expert may sign as an expert who took part (参与调解专家).
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import hmac
import io
import secrets
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from disputes.models import Party
from foundation.database import iso_utc, utcnow
from foundation.errors import AppError, Conflict, Forbidden, Invalid, NotFound, TooManyRequests
from outcomes.models import IdentityCheck, OfficeSigning, Signature, SignDocument, SigningCode
from scheduling import outbox
from scheduling.models import MediationSession, Participant

CODE_VALID = dt.timedelta(minutes=10)
CODE_TRIES = 5
CODE_AGAIN_AFTER = dt.timedelta(seconds=60)
DOCUMENT_TYPES = ("resident_id", "passport", "hk_macau_taiwan", "other")
CAPACITY = {"party": "party", "host": "mediator", "expert": "expert"}
MAX_SIGNATURE_BYTES = 300_000
MAX_SEAL_BYTES = 1_000_000
# A drawn signature: at least this many inked pixels, spanning at least this much of the pad.
MIN_INK_PIXELS = 150
MIN_SPAN = (60, 20)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def mask_phone(phone: str) -> str:
    """138****5678: enough for the party to know it, not enough to call them."""
    digits = phone.strip()
    return digits[:3] + "****" + digits[-4:] if len(digits) >= 8 else "****"


async def document(db: AsyncSession, outcome_id: int, kind: str) -> SignDocument:
    """An outcome's document of this kind; NotFound when there is none (yet)."""
    doc = await db.scalar(select(SignDocument).where(SignDocument.outcome_id == outcome_id, SignDocument.kind == kind))
    if doc is None:
        raise NotFound("this document has not been prepared yet" if kind == "application"
                       else "no outcome has been recorded for this session yet")
    return doc


async def start_document(db: AsyncSession, outcome_id: int, kind: str, text: str) -> SignDocument:
    """Create a document for signing (once: a second call returns the first)."""
    existing = await db.scalar(select(SignDocument).where(SignDocument.outcome_id == outcome_id, SignDocument.kind == kind))
    if existing is not None:
        return existing
    doc = SignDocument(outcome_id=outcome_id, kind=kind, version=1, text_sha256=sha256(text))
    db.add(doc)
    await db.flush()
    return doc


def signers(session: MediationSession) -> list[Participant]:
    """Who signs a session's documents: the parties, the host, the experts (in that order)."""
    order = {"party": 0, "host": 1, "expert": 2}
    return sorted((p for p in session.participants if p.kind in order and p.status != "removed"),
                  key=lambda p: (order[p.kind], p.id))


async def party_phone(db: AsyncSession, participant: Participant) -> str:
    """The phone number on the dispute for this party (their link's number where it has none)."""
    if participant.party_id is not None:
        party = await db.get(Party, participant.party_id)
        if party is not None and party.phone:
            return party.phone
    return participant.phone


async def _signatures(db: AsyncSession, doc: SignDocument) -> list[Signature]:
    return list(await db.scalars(select(Signature).where(Signature.document_id == doc.id).order_by(Signature.id)))


def counts(signature: Signature, doc: SignDocument, text_sha256: str) -> bool:
    """Whether a signature holds: handwritten, on this version, on exactly this text."""
    return (signature.method == "handwritten" and signature.version == doc.version
            and signature.text_sha256 == text_sha256)


async def state(db: AsyncSession, session: MediationSession, doc: SignDocument, text: str) -> dict[str, Any]:
    """Who has signed what of a document, whose signature is void, and what is left to do."""
    text_sha256 = sha256(text)
    rows = await _signatures(db, doc)
    checks = {c.participant_id: c for c in await db.scalars(
        select(IdentityCheck).where(IdentityCheck.participant_id.in_([p.id for p in session.participants])))}
    people = []
    for person in signers(session):
        mine = [s for s in rows if s.participant_id == person.id]
        valid = next((s for s in mine if counts(s, doc, text_sha256)), None)
        people.append({
            "participant_id": person.id, "name": person.display_name, "kind": person.kind,
            "capacity": CAPACITY[person.kind],
            "identity": identity_view(checks[person.id]) if person.id in checks else None,
            "signed_at": iso_utc(valid.signed_at) if valid else None,
            "signature_id": valid.id if valid else None,
            "voided": [iso_utc(s.signed_at) for s in mine if s is not valid and s.method == "handwritten"],
            "typed_name_at": next((iso_utc(s.signed_at) for s in mine if s.method == "typed_name"), None),
        })
    parties = [p for p in people if p["kind"] == "party"]
    host = [p for p in people if p["kind"] == "host"]
    ready = bool(parties) and all(p["signed_at"] for p in parties) and all(p["signed_at"] for p in host)
    sealed = doc.sealed_at is not None and doc.text_sha256 == text_sha256
    return {
        "document_id": doc.id, "kind": doc.kind, "version": doc.version, "text_sha256": text_sha256,
        "signers": people, "ready_to_seal": ready, "sealed_at": iso_utc(doc.sealed_at) if sealed else None,
        "sealed_by": doc.sealed_by if sealed else "", "complete": ready and sealed,
    }


async def identities(db: AsyncSession, session: MediationSession) -> list[dict[str, Any]]:
    """Each party of a session with their identity check (None: not checked yet)."""
    parties = [p for p in session.participants if p.kind == "party" and p.status != "removed"]
    checks = {c.participant_id: c for c in await db.scalars(
        select(IdentityCheck).where(IdentityCheck.participant_id.in_([p.id for p in parties])))}
    return [{"participant_id": p.id, "name": p.display_name,
             "identity": identity_view(checks[p.id]) if p.id in checks else None} for p in parties]


def identity_view(check: IdentityCheck) -> dict[str, Any]:
    """An identity check as the pages show it: never the full number."""
    return {"document_type": check.document_type, "number_last4": check.number_last4,
            "checked_by": check.checked_by, "checked_at": iso_utc(check.checked_at)}


async def check_identity(
    db: AsyncSession, session: MediationSession, participant_id: int, *, document_type: str, number: str, by: str,
) -> dict[str, Any]:
    """The host saw this party's identity document on camera: keep which document, the last 4
    characters of its number, who checked and when (the full number only where the office asks)."""
    party = next((p for p in session.participants if p.id == participant_id), None)
    if party is None or party.kind != "party":
        raise NotFound("no party with id {participant_id} in this session", participant_id=participant_id)
    if document_type not in DOCUMENT_TYPES:
        raise Invalid("choose the kind of identity document", field="document_type")
    number = number.strip().upper()
    if not (4 <= len(number) <= 32 and number.isascii() and number.isalnum()):
        raise Invalid("enter the document's number, or at least its last 4 characters", field="number")
    settings = await db.get(OfficeSigning, session.office_id) if session.office_id is not None else None
    full = number if settings is not None and settings.full_id_numbers and len(number) > 4 else ""
    check = await db.scalar(select(IdentityCheck).where(IdentityCheck.participant_id == participant_id))
    if check is None:
        check = IdentityCheck(participant_id=participant_id, document_type=document_type, number_last4=number[-4:],
                              full_number=full, checked_by=by[:80], checked_at=utcnow())
        db.add(check)
    else:
        check.document_type, check.number_last4, check.full_number = document_type, number[-4:], full
        check.checked_by, check.checked_at = by[:80], utcnow()
    await db.flush()
    return identity_view(check)


async def codes_to_show(db: AsyncSession, session: MediationSession, now: dt.datetime) -> dict[int, str]:
    """The codes staff read out where no SMS gateway sent them: each party's latest one still usable."""
    rows = await db.scalars(select(SigningCode).where(
        SigningCode.participant_id.in_([p.id for p in session.participants]), SigningCode.shown_code != "",
        SigningCode.used_at.is_(None), SigningCode.expires_at > now, SigningCode.tries < CODE_TRIES,
    ).order_by(SigningCode.id))
    return {row.participant_id: row.shown_code for row in rows}


def _code_hash(secret: str, participant_id: int, code: str) -> str:
    return hmac.new(secret.encode(), f"{participant_id}:{code}".encode(), hashlib.sha256).hexdigest()


async def send_code(
    db: AsyncSession, session: MediationSession, doc: SignDocument, party: Participant, *, secret: str,
    office_name: str, title: str, shown: bool, now: dt.datetime,
) -> dict[str, Any]:
    """Send a party a new one-time code (6 digits, valid 10 minutes) by SMS to the phone on the
    dispute, through the outbox; `shown`: there is no SMS gateway, so staff see the code instead."""
    if party.kind != "party":
        raise Forbidden("only the parties receive a signing code")
    phone = await party_phone(db, party)
    if not phone:
        raise Conflict("the dispute has no phone number for this party: staff add it first")
    last = await db.scalar(select(SigningCode).where(SigningCode.participant_id == party.id,
                                                     SigningCode.document_id == doc.id)
                           .order_by(SigningCode.id.desc()).limit(1))
    if last is not None and now - last.sent_at < CODE_AGAIN_AFTER:
        wait = int((CODE_AGAIN_AFTER - (now - last.sent_at)).total_seconds()) + 1
        raise TooManyRequests("a new code can be sent in {seconds} s", retry_after_s=wait, seconds=wait)
    code = f"{secrets.randbelow(10**6):06d}"
    row = SigningCode(document_id=doc.id, participant_id=party.id, code_hash=_code_hash(secret, party.id, code),
                      shown_code=code if shown else "", sent_at=now, expires_at=now + CODE_VALID)
    db.add(row)
    await db.flush()
    body = f"【{office_name}】您正在签署“{title}”的调解文书，验证码 {code}，10 分钟内有效。如非本人操作，请忽略。"
    await outbox.queue(db, [dict(
        key=f"signing-code:{row.id}", session_id=session.id, kind="signing_code", channel="sms", recipient=phone,
        body=body, params={"code": code, "name": party.display_name, "office": office_name, "title": title},
    )])
    return {"sent_to": mask_phone(phone), "expires_at": iso_utc(row.expires_at),
            "again_after_s": int(CODE_AGAIN_AFTER.total_seconds()), "shown_to_staff": shown}


async def _use_code(db: AsyncSession, doc: SignDocument, party: Participant, code: str, secret: str,
                    now: dt.datetime) -> AppError | None:
    """Spend the party's latest code; the reason it cannot be used, or None."""
    row = await db.scalar(select(SigningCode).where(SigningCode.participant_id == party.id,
                                                    SigningCode.document_id == doc.id)
                          .order_by(SigningCode.id.desc()).limit(1))
    if row is None or row.used_at is not None:
        return Invalid("ask for a code first", field="code")
    if row.expires_at <= now:
        return Invalid("the code has expired: ask for a new one", field="code")
    if row.tries >= CODE_TRIES:
        return Invalid("too many wrong codes: ask for a new one", field="code")
    if not hmac.compare_digest(row.code_hash, _code_hash(secret, party.id, code.strip())):
        left = CODE_TRIES - row.tries - 1
        # Counted in one statement, so that tries made at the same moment all count.
        await db.execute(update(SigningCode).where(SigningCode.id == row.id).values(tries=SigningCode.tries + 1))
        return Invalid("the code is wrong: {left} tries left", field="code", left=left) if left > 0 else \
            Invalid("too many wrong codes: ask for a new one", field="code")
    row.used_at = now
    return None


def check_drawing(data_url: str) -> bytes:
    """A drawn signature (a PNG data URL from the pad) as PNG bytes; Invalid when it is not a
    PNG, too large, or empty or a tiny scribble."""
    from PIL import Image, UnidentifiedImageError

    prefix = "data:image/png;base64,"
    if not data_url.startswith(prefix):
        raise Invalid("the signature must be a PNG image from the signature pad", field="signature")
    try:
        raw = base64.b64decode(data_url[len(prefix):], validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("the signature must be a PNG image from the signature pad", field="signature") from None
    if len(raw) > MAX_SIGNATURE_BYTES:
        raise Invalid("the signature image is too large", field="signature")
    try:
        image = Image.open(io.BytesIO(raw))
        if image.format != "PNG" or image.width > 3000 or image.height > 2000:
            raise Invalid("the signature must be a PNG image from the signature pad", field="signature")
        alpha = image.convert("RGBA").getchannel("A")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise Invalid("the signature must be a PNG image from the signature pad", field="signature") from None
    ink = alpha.point(lambda v: 255 if v > 32 else 0)
    box = ink.getbbox()
    inked = ink.histogram()[255]
    if box is None or inked < MIN_INK_PIXELS or box[2] - box[0] < MIN_SPAN[0] or box[3] - box[1] < MIN_SPAN[1]:
        raise Invalid("the signature is empty or too small: sign across the box", field="signature")
    return raw


@dataclasses.dataclass(frozen=True)
class Signing:
    """One person's signing: the text they read (its hash), the drawing, the code (parties)."""

    text_sha256: str
    drawing: str
    code: str = ""
    ip: str = ""
    user_agent: str = ""


async def sign(
    db: AsyncSession, session: MediationSession, doc: SignDocument, signer: Participant, text: str, data: Signing, *,
    secret: str, now: dt.datetime,
) -> dict[str, Any] | AppError:
    """Sign the current version of a document. Returns the signature, or (after keeping a wrong
    code's count) the reason it was refused, for the caller to commit and then raise."""
    if signer.kind not in CAPACITY or signer.status == "removed":
        raise Forbidden("this link cannot sign documents")
    if doc.kind == "application" and signer.kind != "party":
        raise Forbidden("only the parties sign the application")
    if data.text_sha256 != sha256(text):
        raise Conflict("the text has changed since you opened it: read it again before signing")
    if doc.sealed_at is not None and doc.text_sha256 == data.text_sha256:
        raise Conflict("this document is already sealed")
    image = check_drawing(data.drawing)
    identity: dict[str, Any] = {}
    phone = ""
    if signer.kind == "party":
        check = await db.scalar(select(IdentityCheck).where(IdentityCheck.participant_id == signer.id))
        if check is None:
            raise Conflict("the host has not checked your identity document yet")
        if (refused := await _use_code(db, doc, signer, data.code, secret, now)) is not None:
            return refused
        identity, phone = identity_view(check), mask_phone(await party_phone(db, signer))
    signature = Signature(
        document_id=doc.id, version=doc.version, participant_id=signer.id, capacity=CAPACITY[signer.kind],
        name=signer.display_name, image_png=image, text_sha256=data.text_sha256, identity=identity,
        phone_masked=phone, ip_address=data.ip[:64], user_agent=data.user_agent[:400], signed_at=now,
    )
    try:
        async with db.begin_nested():
            db.add(signature)
    except IntegrityError:
        raise Conflict("you have already signed this version") from None
    return {"signature_id": signature.id, "signed_at": iso_utc(now), "version": doc.version}


async def text_changed(
    db: AsyncSession, session: MediationSession, doc: SignDocument, text: str, *, office_name: str, title: str,
) -> list[str]:
    """After an edit: when the document's text is no longer what was signed, move it to a new
    version (voiding its signatures and lifting its seal) and tell each signer. The names told."""
    new = sha256(text)
    if doc.text_sha256 == new:
        return []
    signed = [s for s in await _signatures(db, doc) if s.version == doc.version and s.method == "handwritten"]
    if not signed and doc.sealed_at is None:
        doc.text_sha256 = new
        return []
    # One statement that only the first of two racing edits wins: the document moves on once.
    moved = await db.execute(update(SignDocument).where(SignDocument.id == doc.id, SignDocument.version == doc.version)
                             .values(version=doc.version + 1, text_sha256=new, sealed_at=None, sealed_by=""))
    await db.refresh(doc)
    if moved.rowcount == 0:  # type: ignore[attr-defined]
        return []
    people = {p.id: p for p in session.participants}
    name = "调解协议" if doc.kind == "agreement" else "司法确认申请书"
    messages = []
    for s in signed:
        person = people.get(s.participant_id)
        if person is None:
            continue
        body = (f"{person.display_name}，您好：\n\n“{title}”的{name}内容已被修改，您于此前所作的签名已作废。"
                f"请用原链接打开待签材料，重新阅读后再签署。\n\n{office_name}\n")
        for channel, recipient in (("sms", person.phone), ("email", person.email)):
            if recipient:
                messages.append(dict(key=f"void:{doc.id}:{doc.version}:{person.id}:{channel}", session_id=session.id,
                                     kind="signature_void", channel=channel, recipient=recipient,
                                     subject=f"签名已作废：{title}", body=body,
                                     params={"name": person.display_name, "office": office_name, "title": title}
                                     if channel == "sms" else None))
    await outbox.queue(db, messages)
    return [s.name for s in signed]


async def seal(db: AsyncSession, doc: SignDocument, state_now: dict[str, Any], office_id: int | None, by: str,
               now: dt.datetime) -> None:
    """The host applies the office's seal: once every party and the mediator have signed."""
    if doc.kind == "agreement":
        office = await db.get(OfficeSigning, office_id) if office_id is not None else None
        if office is None or office.seal_png is None:
            raise Conflict("the office has no seal yet: an office admin uploads it on the office settings page")
    if not state_now["ready_to_seal"]:
        raise Conflict("every party and the mediator must sign first")
    if state_now["sealed_at"]:
        raise Conflict("this document is already sealed")
    doc.sealed_at, doc.sealed_by = now, by[:80]
    await db.flush()


def check_seal(raw: bytes) -> bytes:
    """An uploaded seal image (PNG or JPEG, at most 1 MB, 100-2000 px) as a PNG; Invalid otherwise."""
    from PIL import Image, UnidentifiedImageError

    if len(raw) > MAX_SEAL_BYTES:
        raise Invalid("the seal image is larger than 1 MB", field="seal")
    try:
        image = Image.open(io.BytesIO(raw))
        if image.format not in ("PNG", "JPEG"):
            raise Invalid("the seal must be a PNG or JPEG image", field="seal")
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise Invalid("the seal must be a PNG or JPEG image", field="seal") from None
    if not (100 <= image.width <= 2000 and 100 <= image.height <= 2000):
        raise Invalid("the seal image must be 100 to 2000 pixels wide and high", field="seal")
    out = io.BytesIO()
    image.convert("RGBA").save(out, format="PNG")
    return out.getvalue()


async def office_signing(db: AsyncSession, office_id: int) -> OfficeSigning:
    """An office's signing settings (created empty the first time)."""
    row = await db.get(OfficeSigning, office_id)
    if row is None:
        row = OfficeSigning(office_id=office_id)
        db.add(row)
        await db.flush()
    return row
