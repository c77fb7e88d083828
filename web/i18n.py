"""Message catalogues (zh-CN first, English second) and the page language."""
from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from starlette.requests import HTTPConnection

from foundation.errors import AppError
from foundation.vocabulary import label

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
LANGUAGES = ("zh", "en")
LANG_COOKIE = "lang"


@functools.cache
def catalogue(lang: str) -> dict[str, str]:
    """The messages of one language."""
    return json.loads((WEB_DIR / "locales" / f"{lang}.json").read_text(encoding="utf-8"))


def language(conn: HTTPConnection) -> str:
    """The page language: ?lang= first, then the cookie, else Chinese."""
    wanted = conn.query_params.get("lang") or conn.cookies.get(LANG_COOKIE) or "zh"
    return wanted if wanted in LANGUAGES else "zh"


def translator(lang: str) -> Callable[..., str]:
    """A function that looks a key up in the language's catalogue (falling back to Chinese)."""
    messages = catalogue(lang)
    fallback = catalogue("zh")

    def t(key: str, **values: object) -> str:
        text = messages.get(key) or fallback.get(key) or key
        return text.format(**values) if values else text

    return t


def vocabulary_label(lang: str) -> Callable[[str], str]:
    """Labels of the office's codes (roles, dispute types, statuses) in the language."""
    return lambda code: label(code, lang)


@functools.cache
def local_time(value: str | None, timezone: str, lang: str = "zh", fmt: str = "datetime") -> str:
    """An ISO time in the zone, one way on every page: 'datetime' is '2026-12-02（周三）15:00'
    ('Wed 2026-12-02 15:00' in English), 'date' the same without the time; else a strftime format."""
    if not value:
        return ""
    moment = dt.datetime.fromisoformat(value).astimezone(ZoneInfo(timezone))
    if fmt not in ("datetime", "date"):
        return moment.strftime(fmt)
    clock = f" {moment:%H:%M}" if fmt == "datetime" else ""
    if lang == "en":
        return f"{moment:%a %Y-%m-%d}{clock}"
    return f"{moment:%Y-%m-%d}（周{'一二三四五六日'[moment.weekday()]}）{clock.strip()}"


def _error_catalogue() -> dict[str, str]:
    return json.loads((WEB_DIR / "locales" / "errors.zh.json").read_text(encoding="utf-8"))


def error_text(error: AppError, lang: str) -> str:
    """An error's message in the language: Chinese from the error catalogue, codes in values
    (statuses, roles) by their labels; English as raised."""
    if lang == "en":
        return error.message
    messages = _error_catalogue()

    def translate(template: str, values: dict[str, object]) -> str:
        shown = {k: label(v) if isinstance(v, str) else v for k, v in values.items()}
        return messages.get(template, template).format(**shown)

    return error.text(translate, sep="；")
