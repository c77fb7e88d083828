"""HTML to PDF with WeasyPrint, reading only the app's own static files (never the network).

WeasyPrint loads Pango when it is imported, so it is imported on the first PDF asked for: a
server without Pango runs, and answers 503 for PDFs only (the printable page still works).
"""
from __future__ import annotations

import functools
from typing import Any

import anyio

from server.errors import Unavailable
from web.i18n import STATIC_DIR

BASE_URL = "https://tiaojie.invalid/"
_TYPES = {".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml"}


@functools.cache
def _weasyprint() -> tuple[Any, Any]:
    """WeasyPrint's HTML class, and a fetcher that serves /static/ and refuses every other address."""
    try:
        from weasyprint import HTML
        from weasyprint.urls import URLFetcher, URLFetcherResponse
    except OSError as error:
        raise Unavailable("this server cannot make PDFs (it lacks Pango: apt-get install libpango-1.0-0 "
                          "libpangoft2-1.0-0); use the printable page") from error

    class StaticOnly(URLFetcher):
        def fetch(self, url: str, headers: Any = None) -> Any:
            prefix = BASE_URL + "static/"
            path = (STATIC_DIR / url.removeprefix(prefix)).resolve()
            if not url.startswith(prefix) or STATIC_DIR.resolve() not in path.parents or path.suffix not in _TYPES:
                raise ValueError(f"the PDF may not load {url}")
            return URLFetcherResponse(url, body=path.read_bytes(), headers={"Content-Type": _TYPES[path.suffix]})

    return HTML, StaticOnly


def _render(html: str) -> bytes:
    document, fetcher = _weasyprint()
    return bytes(document(string=html, base_url=BASE_URL, url_fetcher=fetcher()).write_pdf())


async def html_to_pdf(html: str) -> bytes:
    """The PDF of a page (in a worker thread: rendering takes a CPU for a fraction of a second)."""
    return await anyio.to_thread.run_sync(_render, html)
