"""Staff login and dashboard, expert sign-in and portal, the join page."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from disputes.models import Dispute
from experts import service as experts
from foundation.database import utcnow
from foundation.errors import AppError
from outcomes.documents import DOCUMENT_NAMES
from scheduling import calendar, invites
from server.auth import current_expert_id, current_staff
from server.http import transaction
from server.links import invitation_view, link_for, site_url
from server.logins import check_login, log_out, remember_device, send_magic_link, sign_in_expert
from server.pages.render import render
from web.i18n import catalogue, error_text, language, local_time, translator


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def login_page(request: Request) -> Response:
    """The staff login form."""
    if request.method == "GET":
        return render(request, "login.html", next=request.query_params.get("next", ""))
    form = await request.form()
    username = str(form.get("username", ""))
    try:
        await check_login(request, username, str(form.get("password", "")))
    except AppError as exc:
        error = error_text(exc, language(request)) if exc.status_code == 429 else translator(language(request))("login.failed")
        page = render(request, "login.html", exc.status_code, error=error, username=username)
        page.headers.update(exc.headers)
        return page
    target = request.query_params.get("next", "/")
    response = _redirect(target if target.startswith("/") and not target.startswith("//") else "/")
    remember_device(request, response, username)
    return response


async def logout_page(request: Request) -> Response:
    """Log out and return to the login page (an expert's, for an expert)."""
    expert = current_staff(request) is None and current_expert_id(request) is not None
    await log_out(request)
    return _redirect("/expert/login" if expert else "/login")


async def expert_login_page(request: Request) -> Response:
    """Expert sign-in: ask for a link, or spend the one in ?token= with a button press."""
    if request.method == "POST":
        form = await request.form()
        if form.get("token"):
            try:
                await sign_in_expert(request, str(form["token"]))
            except AppError as exc:
                return render(request, "error.html", exc.status_code, message=error_text(exc, language(request)))
            return _redirect("/expert")
        await send_magic_link(request, str(form.get("email", "")))
        return render(request, "expert_login.html", sent=True)
    # A GET never spends the token: mail scanners fetch links before people do.
    return render(request, "expert_login.html", token=request.query_params.get("token", ""))


async def expert_home(request: Request) -> Response:
    """The expert's own portal."""
    expert_id = current_expert_id(request)
    if expert_id is None:
        return _redirect("/expert/login")
    state = request.app.state
    settings = state.settings
    async with transaction(request) as db:
        expert = await experts.get_expert(db, expert_id)
        availability = await experts.get_availability(db, expert_id)
        sessions = await calendar.expert_sessions(
            db, expert_id, utcnow(),
            lambda s, p: link_for(request, s, p),
        )
    for item in sessions:
        item["start_local"] = local_time(item["start"], settings.timezone)
        item["token"] = item["join_url"].rsplit("/", 1)[1]
    calendar_url = f"{site_url(request)}/calendar/{state.tokens.calendar_feed(expert_id)}.ics"
    return render(request, "expert_home.html", expert=expert, availability=availability,
                  sessions=sessions, calendar_url=calendar_url)


async def join_page(request: Request) -> Response:
    """A participant's invitation: what will happen, a device check, then the room."""
    t = translator(language(request))
    token = request.path_params["token"]
    try:
        async with transaction(request) as db:
            session, participant = await invites.open_invite(db, request.app.state.tokens, token)
            view = invitation_view(session, participant, await db.get(Dispute, session.dispute_id), request.app.state.settings)
    except AppError as exc:
        key = {401: "join.invalid", 403: "join.revoked", 404: "join.revoked", 410: "join.expired"}.get(exc.status_code, "join.invalid")
        if "cancelled" in exc.message:
            key = "join.cancelled"
        return render(request, "error.html", exc.status_code, title=t("join.link_problem"), message=t(key))
    settings = request.app.state.settings
    strings = {k: v for k, v in catalogue(language(request)).items() if k.startswith(("room.", "join."))}
    return render(
        request, "join.html", view=view, token=token, ended=view["session"]["status"] == "ended",
        starts=local_time(view["session"]["start"], settings.timezone, language(request)),
        ends=local_time(view["session"]["end"], settings.timezone)[-5:],
        opens=local_time(view["room"]["opens_at"], settings.timezone, language(request)),
        timezone=settings.timezone, strings=strings, evidence_limit_mb=settings.evidence_max_bytes // 1048576,
        document_names=DOCUMENT_NAMES,
        evidence_urls={"list": f"/api/join/{token}/evidence", "file": f"/api/join/{token}/evidence/{{id}}",
                       "upload": "" if view["you"]["kind"] == "observer" else f"/api/join/{token}/evidence"},
    )


routes = [
    Route("/login", login_page, methods=["GET", "POST"]),
    Route("/logout", logout_page, methods=["POST"]),
    Route("/expert/login", expert_login_page, methods=["GET", "POST"]),
    Route("/expert", expert_home),
    Route("/join/{token}", join_page),
]
