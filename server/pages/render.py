"""Pages rendered from the templates in web/, in the request's language."""
from __future__ import annotations

from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from server.auth import csrf_token, current_expert_id, current_staff, staff_identity
from web.i18n import LANG_COOKIE, WEB_DIR, language, local_time, translator, vocabulary_label

_templates = Environment(
    loader=FileSystemLoader(WEB_DIR / "templates"), autoescape=select_autoescape(["html"])
)


def render_text(request: Request, template: str, **context: Any) -> str:
    """A template rendered in the request's language, with the helpers every template uses."""
    lang = language(request)
    helpers = {
        "request": request, "lang": lang, "t": translator(lang), "label": vocabulary_label(lang),
        "local": lambda value, timezone, fmt="datetime": local_time(value, timezone, lang, fmt),
        "csrf_token": csrf_token(request), "staff": current_staff(request), "expert_id": current_expert_id(request),
        "who": staff_identity(request),
    }
    return _templates.get_template(template).render({**helpers, **context})


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page in the request's language."""
    lang = language(request)
    response = HTMLResponse(render_text(request, template, **context), status_code=status_code)
    if request.query_params.get("lang") == lang:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax")
    return response
