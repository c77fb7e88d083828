"""Error types that carry their HTTP status; domain code raises them, one handler renders them.

A message is an English template with named values (`NotFound("no expert with id {expert_id}",
expert_id=7)`), so that the pages can show it in the reader's language: the catalogue
`web/locales/errors.zh.json` translates the template, then the values are filled in.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

Part = tuple[str, dict[str, object]]  # a template and its values


class AppError(Exception):
    """A failure to report to the client, with its HTTP status and an optional field name."""

    status_code = 400

    def __init__(
        self, message: str | list[Part], *, field: str | None = None,
        details: list[dict[str, str]] | None = None, **values: object,
    ) -> None:
        self.parts: list[Part] = [(message, values)] if isinstance(message, str) else message
        self.message = self.text()
        super().__init__(self.message)
        self.field = field
        self.details = details

    def text(self, translate: Callable[[str, dict[str, object]], str] | None = None, sep: str = "; ") -> str:
        """The message, each part's template translated (default: the English) and filled in."""
        return sep.join(
            (translate(template, values) if translate else template.format(**values) if values else template)
            for template, values in self.parts
        )

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the response carries beside the status (none by default)."""
        return {}

    def to_dict(self) -> dict[str, object]:
        """The JSON body of the error response."""
        body: dict[str, object] = {"error": self.message}
        if self.field:
            body["field"] = self.field
        if self.details:
            body["details"] = self.details
        return body


class BadRequest(AppError):
    status_code = 400


class Unauthorized(AppError):
    status_code = 401


class Forbidden(AppError):
    status_code = 403


class NotFound(AppError):
    status_code = 404


class Conflict(AppError):
    status_code = 409


class Gone(AppError):
    status_code = 410


class RequestTimeout(AppError):
    status_code = 408


class PayloadTooLarge(AppError):
    status_code = 413


class UnsupportedMediaType(AppError):
    status_code = 415


class Invalid(AppError):
    status_code = 422


class BadValue(ValueError):
    """Raised by a model's validator: a message template and its values, translated as an AppError's."""

    def __init__(self, template: str, **values: object) -> None:
        super().__init__(template.format(**values))
        self.part: Part = (template, values)


class _TryAgain(AppError):
    """An error worth trying again: `retry_after_s`, when given, goes out as Retry-After."""

    def __init__(self, message: str, *, retry_after_s: int | None = None, **values: Any) -> None:
        super().__init__(message, **values)
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)} if self.retry_after_s else {}


class TooManyRequests(_TryAgain):
    """Too many requests."""

    status_code = 429


class InsufficientStorage(AppError):
    """The server's disk is full: nothing was stored."""

    status_code = 507


class Unavailable(_TryAgain):
    """The server lacks something it needs for this request (not the client's fault)."""

    status_code = 503
