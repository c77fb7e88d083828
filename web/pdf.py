"""HTML to PDF with WeasyPrint, reading only the app's own static files (never the network)."""
from __future__ import annotations

from typing import Any

import anyio
from weasyprint import HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse

from web.i18n import STATIC_DIR

BASE_URL = "https://tiaojie.invalid/"
_TYPES = {".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml"}


class _StaticOnly(URLFetcher):
    """Serves /static/ from the package folder and refuses every other address."""

    def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
        prefix = BASE_URL + "static/"
        path = (STATIC_DIR / url.removeprefix(prefix)).resolve()
        if not url.startswith(prefix) or STATIC_DIR.resolve() not in path.parents or path.suffix not in _TYPES:
            raise ValueError(f"the PDF may not load {url}")
        return URLFetcherResponse(url, body=path.read_bytes(), headers={"Content-Type": _TYPES[path.suffix]})


def _render(html: str) -> bytes:
    return HTML(string=html, base_url=BASE_URL, url_fetcher=_StaticOnly()).write_pdf()


async def html_to_pdf(html: str) -> bytes:
    """The PDF of a page (in a worker thread: rendering takes a CPU for a fraction of a second)."""
    return await anyio.to_thread.run_sync(_render, html)
