"""Evidence files for a dispute: checked, stored on disk with a checksum, shown to whom may see them.

Who sees what: staff and the expert panel (experts and the host of any session of the dispute)
see every file; a party sees the files they gave and the ones staff shared, never the other
party's. A file is accepted only if its name has an allowed extension, its first bytes match that
type, and it is not larger than the limit; a refused file leaves nothing behind, on disk or in the
database.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import hashlib
import logging
import os
import uuid
from collections.abc import AsyncIterable
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from disputes.models import Dispute, Evidence
from foundation.database import iso_utc
from foundation.errors import (
    Conflict,
    Forbidden,
    InsufficientStorage,
    Invalid,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    UnsupportedMediaType,
)

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class FileType:
    """An accepted kind of file: its content type and the bytes it starts with."""

    content_type: str
    magic: tuple[tuple[int, bytes], ...]  # (offset, bytes): any one must match; () accepts any

    def matches(self, head: bytes) -> bool:
        return not self.magic or any(head[offset:offset + len(sig)] == sig for offset, sig in self.magic)


_JPEG = FileType("image/jpeg", ((0, b"\xff\xd8\xff"),))
_OLE = ((0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"),)  # old Word and Excel files
_ZIP = ((0, b"PK\x03\x04"),)  # Word and Excel 2007+
FILE_TYPES: dict[str, FileType] = {
    "jpg": _JPEG, "jpeg": _JPEG,
    "png": FileType("image/png", ((0, b"\x89PNG\r\n\x1a\n"),)),
    "gif": FileType("image/gif", ((0, b"GIF87a"), (0, b"GIF89a"))),
    "webp": FileType("image/webp", ((8, b"WEBP"),)),
    "heic": FileType("image/heic", ((4, b"ftypheic"), (4, b"ftypmif1"), (4, b"ftypheix"))),
    "pdf": FileType("application/pdf", ((0, b"%PDF-"),)),
    "doc": FileType("application/msword", _OLE),
    "xls": FileType("application/vnd.ms-excel", _OLE),
    "docx": FileType("application/vnd.openxmlformats-officedocument.wordprocessingml.document", _ZIP),
    "xlsx": FileType("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", _ZIP),
    "txt": FileType("text/plain; charset=utf-8", ()),
    "mp3": FileType("audio/mpeg", ((0, b"ID3"), (0, b"\xff\xfb"), (0, b"\xff\xf3"), (0, b"\xff\xf2"))),
    "m4a": FileType("audio/mp4", ((4, b"ftyp"),)),
    "mp4": FileType("video/mp4", ((4, b"ftyp"),)),
}
HEAD_BYTES = 16
PANEL_KINDS = ("expert", "host")


def file_type(filename: str) -> FileType:
    """The accepted type of a file name; UnsupportedMediaType naming the allowed ones otherwise."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension not in FILE_TYPES:
        allowed = ", ".join(sorted(FILE_TYPES))
        raise UnsupportedMediaType("files of this type are not accepted; allowed: {allowed}", allowed=allowed, field="name")
    return FILE_TYPES[extension]


def clean_name(filename: str) -> str:
    """The file's own name without any folder part or control characters, at most 200 characters."""
    name = "".join(ch for ch in filename.replace("\\", "/").rsplit("/", 1)[-1] if ch.isprintable()).strip()
    if not name or name.startswith("."):
        raise Invalid("give the file a name, such as 照片.jpg", field="name")
    return name[-200:]


class Viewer(Protocol):
    """A participant as evidence needs them (scheduling's Participant is one; the register
    itself knows nothing of sessions)."""

    id: int
    kind: str
    party_id: int | None


@dataclasses.dataclass(frozen=True)
class Uploader:
    """Who gives the file: a staff member, or a participant from their own link."""

    staff_id: int | None = None
    participant: Viewer | None = None


@dataclasses.dataclass(frozen=True)
class Quota:
    """How much evidence may be given: files and bytes per participant's link and per dispute,
    and uploads per minute per link (a party's link must not be able to fill the disk)."""

    files_per_link: int
    bytes_per_link: int
    files_per_dispute: int
    bytes_per_dispute: int
    per_minute: int


def _mb(size: int) -> str:
    return f"{size / 1048576:g}"


async def check_quota(db: AsyncSession, dispute_id: int, uploader: Uploader, size: int, quota: Quota,
                      now: dt.datetime) -> None:
    """Whether one more file of `size` bytes fits: PayloadTooLarge over a quota, TooManyRequests
    (with the wait) over the rate. Staff are held to the dispute's quota only."""
    def totals(*where: Any) -> Any:
        return select(func.count(), func.coalesce(func.sum(Evidence.size_bytes), 0)).where(*where)

    files, total = (await db.execute(totals(Evidence.dispute_id == dispute_id))).one()
    if files + 1 > quota.files_per_dispute or total + size > quota.bytes_per_dispute:
        raise PayloadTooLarge("this dispute already has {files} files ({mb} MB): the limit is {max_files} files and {max_mb} MB",
                              files=files, mb=_mb(total), max_files=quota.files_per_dispute, max_mb=_mb(quota.bytes_per_dispute))
    if uploader.participant is None:
        return
    mine = Evidence.uploaded_by_participant == uploader.participant.id
    files, total = (await db.execute(totals(mine))).one()
    if files + 1 > quota.files_per_link or total + size > quota.bytes_per_link:
        raise PayloadTooLarge("you have given {files} files ({mb} MB): the limit is {max_files} files and {max_mb} MB",
                              files=files, mb=_mb(total), max_files=quota.files_per_link, max_mb=_mb(quota.bytes_per_link))
    recent = list(await db.scalars(select(Evidence.created_at).where(mine, Evidence.created_at > now - dt.timedelta(minutes=1))
                                   .order_by(Evidence.created_at)))
    if len(recent) >= quota.per_minute:
        wait = int((recent[-quota.per_minute] + dt.timedelta(minutes=1) - now).total_seconds()) + 1
        raise TooManyRequests("too many files in a minute; try again in {seconds} seconds", retry_after_s=wait, seconds=wait)


@dataclasses.dataclass(frozen=True)
class Received:
    """A checked file on disk, not yet recorded (`discard` it if recording fails)."""

    path: Path
    stored_as: str
    filename: str
    content_type: str
    size_bytes: int
    sha256: str

    def discard(self) -> None:
        """Remove the file."""
        self.path.unlink(missing_ok=True)


async def receive(
    folder: Path, dispute_id: int, filename: str, chunks: AsyncIterable[bytes], *, max_bytes: int,
) -> Received:
    """Stream a file to disk while checking it (name, size, first bytes); refused, it is removed.

    No database transaction is open meanwhile: a slow upload must not hold SQLite's write lock.
    """
    name = clean_name(filename)
    kind = file_type(name)
    stored_as = f"{dispute_id}/{uuid.uuid4().hex}.{name.rsplit('.', 1)[-1].lower()}"
    target = folder / stored_as
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    digest, size, head = hashlib.sha256(), 0, b""
    try:
        with partial.open("wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge("the file is larger than the limit of {mb} MB", mb=f"{max_bytes / 1048576:g}")
                if len(head) < HEAD_BYTES:
                    head += chunk[:HEAD_BYTES - len(head)]
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise Invalid("the file is empty", field="body")
        if not kind.matches(head):
            raise UnsupportedMediaType("the file's content does not match its type", field="body")
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            logger.error("evidence not stored, the disk is full: %s", exc)
            raise InsufficientStorage("the server's storage is full: nothing was stored; tell the office") from None
        raise
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return Received(target, stored_as, name, kind.content_type, size, digest.hexdigest())


async def record(
    db: AsyncSession, received: Received, dispute_id: int, uploader: Uploader, description: str = "",
) -> dict[str, Any]:
    """Record a received file as evidence of the dispute."""
    if await db.get(Dispute, dispute_id) is None:
        raise NotFound("no dispute with id {dispute_id}", dispute_id=dispute_id)
    participant = uploader.participant
    evidence = Evidence(
        dispute_id=dispute_id, filename=received.filename, stored_as=received.stored_as,
        content_type=received.content_type, size_bytes=received.size_bytes, sha256=received.sha256,
        description=description[:2000], uploaded_by_staff=uploader.staff_id,
        uploaded_by_participant=participant.id if participant else None,
        party_id=participant.party_id if participant else None,
    )
    db.add(evidence)
    await db.flush()
    return view(evidence)


def view(evidence: Evidence) -> dict[str, Any]:
    """What a listing shows of one file."""
    return {
        "id": evidence.id, "dispute_id": evidence.dispute_id, "filename": evidence.filename,
        "content_type": evidence.content_type, "size_bytes": evidence.size_bytes, "sha256": evidence.sha256,
        "description": evidence.description, "shared": evidence.shared, "party_id": evidence.party_id,
        "from_staff": evidence.uploaded_by_staff is not None, "created_at": iso_utc(evidence.created_at),
    }


def visible_to(evidence: Evidence, participant: Viewer) -> bool:
    """Whether a participant (from their link) may see a file (see the module doc)."""
    if participant.kind in PANEL_KINDS:
        return True
    return (
        evidence.shared
        or evidence.uploaded_by_participant == participant.id
        or (participant.party_id is not None and evidence.party_id == participant.party_id)
    )


async def for_dispute(db: AsyncSession, dispute_id: int, participant: Viewer | None = None) -> list[dict[str, Any]]:
    """A dispute's files, oldest first; for a participant only those they may see."""
    if await db.get(Dispute, dispute_id) is None:
        raise NotFound("no dispute with id {dispute_id}", dispute_id=dispute_id)
    rows = await db.scalars(select(Evidence).where(Evidence.dispute_id == dispute_id).order_by(Evidence.id))
    return [view(e) for e in rows if participant is None or visible_to(e, participant)]


async def open_file(
    db: AsyncSession, folder: Path, evidence_id: int, *, dispute_id: int | None = None,
    participant: Viewer | None = None,
) -> tuple[Path, dict[str, Any]]:
    """The stored file and its listing; NotFound for files the participant may not see."""
    evidence = await db.get(Evidence, evidence_id)
    if (
        evidence is None
        or (dispute_id is not None and evidence.dispute_id != dispute_id)
        or (participant is not None and not visible_to(evidence, participant))
    ):
        raise NotFound("no evidence with id {evidence_id}", evidence_id=evidence_id)
    path = folder / evidence.stored_as
    if not path.is_file():
        logger.error("evidence %s is listed but its file %s is missing (is the data folder shared by every node?)",
                     evidence_id, path)
        raise NotFound("the file of evidence {evidence_id} is missing from this server's storage", evidence_id=evidence_id)
    return path, view(evidence)


async def share(db: AsyncSession, evidence_id: int, shared: bool) -> dict[str, Any]:
    """Staff share a file with every party of the dispute (or stop sharing it)."""
    evidence = await db.get(Evidence, evidence_id)
    if evidence is None:
        raise NotFound("no evidence with id {evidence_id}", evidence_id=evidence_id)
    evidence.shared = shared
    await db.flush()
    return view(evidence)


def may_upload(session_status: str, participant: Viewer) -> None:
    """Before or during the session everyone but observers may give evidence; afterwards, the office takes it."""
    if participant.kind == "observer":
        raise Forbidden("observers cannot add evidence")
    if session_status == "ended":
        raise Conflict("this session has ended; please give further material to the office")
