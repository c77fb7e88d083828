"""Message catalogues (zh-CN first, English second) and the page language."""
from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

from starlette.requests import HTTPConnection

from server.errors import AppError
from server.vocabulary import label

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
