"""Routes for evidence files: staff and participants (from their own link) upload and read them.

An upload is the file itself as the request body (`fetch(url, {method: "POST", body: file})`),
its name in `?name=`: the body streams to disk under the size limit, with no transaction open.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from disputes import evidence
from foundation.config import Settings
from foundation.database import utcnow
from foundation.errors import Invalid, PayloadTooLarge, TooManyRequests
from scheduling import invites
from server.auth import require_staff
from server.http import ApiRoute, is_number, ok, path_id, read_json, transaction

Resolve = Callable[[AsyncSession], Awaitable[tuple[int, evidence.Uploader]]]


class ShareIn(BaseModel):
    """Share a file with every party, or stop sharing it."""

    shared: bool


def _folder(request: Request) -> Path:
    return request.app.state.settings.data_dir / "evidence"


def _quota(settings: Settings) -> evidence.Quota:
    return evidence.Quota(
        settings.evidence_files_per_link, settings.evidence_bytes_per_link, settings.evidence_files_per_dispute,
        settings.evidence_bytes_per_dispute, settings.evidence_uploads_per_minute,
    )


# The links uploading now, in this process: one file at a time each, so that no link holds more
# than one file's worth of the disk before the quota sees it.
_uploading: set[int] = set()


async def _upload(request: Request, resolve: Resolve) -> Response:
    """Check who uploads and the quotas (a short transaction), receive the file, then check again
    and record it (another)."""
    settings = request.app.state.settings
    limit = settings.evidence_max_bytes
    declared = request.headers.get("content-length", "")
    if is_number(declared) and int(declared) > limit:
        raise PayloadTooLarge("the file is larger than the limit of {mb} MB", mb=f"{limit / 1048576:g}")
    name = request.query_params.get("name", "")
    if not name:
        raise Invalid("say the file's name in ?name=", field="name")
    async with transaction(request) as db:
        dispute_id, uploader = await resolve(db)
        size = int(declared) if is_number(declared) else 0
        await evidence.check_quota(db, dispute_id, uploader, size, _quota(settings), utcnow())
    link = uploader.participant.id if uploader.participant else None
    if link in _uploading:
        raise TooManyRequests("one file at a time, please: wait until the last one has arrived", retry_after_s=5)
    if link is not None:
        _uploading.add(link)
    try:
        received = await evidence.receive(_folder(request), dispute_id, name, request.stream(), max_bytes=limit)
    finally:
        if link is not None:
            _uploading.discard(link)
    try:
        async with transaction(request) as db:
            dispute_id, uploader = await resolve(db)
            await evidence.check_quota(db, dispute_id, uploader, received.size_bytes, _quota(settings), utcnow())
            result = await evidence.record(db, received, dispute_id, uploader, request.query_params.get("description", ""))
    except BaseException:
        received.discard()
        raise
    return ok(result, 201)


def _file_response(path: Path, item: dict[str, object]) -> Response:
    inline = str(item["content_type"]).startswith(("image/", "application/pdf"))
    disposition = "inline" if inline else "attachment"
    return FileResponse(path, media_type=str(item["content_type"]), headers={
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(str(item['filename']))}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'",
        "X-Checksum-SHA256": str(item["sha256"]),
        "Cache-Control": "private, no-store",
    })


async def staff_upload(request: Request) -> Response:
    """Staff add a file to a dispute."""
    staff = require_staff(request)
    dispute_id = path_id(request)

    async def resolve(db: AsyncSession) -> tuple[int, evidence.Uploader]:
        return dispute_id, evidence.Uploader(staff_id=staff.id)

    return await _upload(request, resolve)


async def staff_list(request: Request) -> Response:
    """Every file of a dispute."""
    require_staff(request)
    dispute_id = path_id(request)
    async with transaction(request) as db:
        return ok(await evidence.for_dispute(db, dispute_id))


async def staff_file(request: Request) -> Response:
    """One file's content."""
    require_staff(request)
    async with transaction(request) as db:
        path, item = await evidence.open_file(db, _folder(request), path_id(request))
    return _file_response(path, item)


async def share(request: Request) -> Response:
    """Share a file with every party (or stop)."""
    require_staff(request)
    evidence_id = path_id(request)
    data = await read_json(request, ShareIn)
    async with transaction(request) as db:
        return ok(await evidence.share(db, evidence_id, data.shared))


async def participant_upload(request: Request) -> Response:
    """A participant adds a file from their own link, before or during the session."""

    async def resolve(db: AsyncSession) -> tuple[int, evidence.Uploader]:
        session, participant = await invites.open_invite(db, request.app.state.tokens, request.path_params["token"])
        evidence.may_upload(session.status, participant)
        return session.dispute_id, evidence.Uploader(participant=participant)

    return await _upload(request, resolve)


async def participant_list(request: Request) -> Response:
    """The files this participant may see."""
    async with transaction(request) as db:
        session, participant = await invites.open_invite(db, request.app.state.tokens, request.path_params["token"])
        return ok(await evidence.for_dispute(db, session.dispute_id, participant))


async def participant_file(request: Request) -> Response:
    """One file this participant may see."""
    evidence_id = path_id(request)
    async with transaction(request) as db:
        session, participant = await invites.open_invite(db, request.app.state.tokens, request.path_params["token"])
        path, item = await evidence.open_file(
            db, _folder(request), evidence_id, dispute_id=session.dispute_id, participant=participant
        )
    return _file_response(path, item)


routes = [
    ApiRoute("/api/disputes/{id}/evidence", staff_upload, methods=["POST"], tag="evidence"),
    ApiRoute("/api/disputes/{id}/evidence", staff_list, methods=["GET"], tag="evidence"),
    ApiRoute("/api/evidence/{id}/file", staff_file, methods=["GET"], tag="evidence"),
    ApiRoute("/api/evidence/{id}/share", share, methods=["POST"], body=ShareIn, tag="evidence"),
    ApiRoute("/api/join/{token}/evidence", participant_upload, methods=["POST"], tag="evidence"),
    ApiRoute("/api/join/{token}/evidence", participant_list, methods=["GET"], tag="evidence"),
    ApiRoute("/api/join/{token}/evidence/{id}", participant_file, methods=["GET"], tag="evidence"),
]
