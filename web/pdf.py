"""HTML to PDF with WeasyPrint, reading only the app's own static files (never the network).

Rendering an agreement takes a CPU for 0.1-0.2 s (0.6 s the first time, loading the CJK fonts),
all of it Python holding the GIL, and the office's digital signature 0.3 s more: in a thread it
slowed every request and every room of the process while PDFs were made. So PDFs are made in a process of their own, one at a time (others
wait their turn), and the last few are kept: a party opening the same agreement again, or staff
printing it, get it at once. WeasyPrint loads Pango when it is imported, in that process only: a
server without Pango runs, and answers 503 for PDFs only (the printable page still works).
"""
from __future__ import annotations

import asyncio
import base64
import collections
import concurrent.futures
import functools
import hashlib
import multiprocessing
from collections.abc import Callable
from typing import Any

from foundation.errors import Unavailable
from outcomes import pades
from web.i18n import STATIC_DIR

BASE_URL = "https://tiaojie.invalid/"
_TYPES = {".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml"}
NO_PANGO = ("this server cannot make PDFs (it lacks Pango: apt-get install libpango-1.0-0 "
            "libpangoft2-1.0-0); use the printable page")
KEEP = 16  # PDFs kept, by their page's content
DATA_PNG = "data:image/png;base64,"


@functools.cache
def _weasyprint() -> tuple[Any, Any]:
    """WeasyPrint's HTML class, and a fetcher that serves /static/ and refuses every other address."""
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class StaticOnly(URLFetcher):
        def fetch(self, url: str, headers: Any = None) -> Any:
            if url.startswith(DATA_PNG):  # a drawn signature or the seal, inlined by the page
                return URLFetcherResponse(url, body=base64.b64decode(url[len(DATA_PNG):]), headers={"Content-Type": "image/png"})
            prefix = BASE_URL + "static/"
            path = (STATIC_DIR / url.removeprefix(prefix)).resolve()
            if not url.startswith(prefix) or STATIC_DIR.resolve() not in path.parents or path.suffix not in _TYPES:
                raise ValueError(f"the PDF may not load {url}")
            return URLFetcherResponse(url, body=path.read_bytes(), headers={"Content-Type": _TYPES[path.suffix]})

    return HTML, StaticOnly


def render(html: str) -> bytes | None:
    """The PDF of a page, in this process; None when WeasyPrint cannot load (no Pango)."""
    try:
        document, fetcher = _weasyprint()
    except OSError:
        return None
    return bytes(document(string=html, base_url=BASE_URL, url_fetcher=fetcher()).write_pdf())


def render_signed(html: str, key_pem: str, cert_pem: str, secret: str, reason: str) -> bytes | None:
    """The PDF of a page with the office's digital signature, in this process."""
    pdf = render(html)
    return None if pdf is None else pades.sign(pdf, key_pem, cert_pem, secret, reason)


@functools.cache
def _renderer() -> concurrent.futures.ProcessPoolExecutor:
    # "spawn": a fresh interpreter, not a fork of a server with threads and an event loop.
    return concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))


_kept: collections.OrderedDict[str, bytes] = collections.OrderedDict()


async def _in_pdf_process(work: Callable[..., bytes | None], *args: str) -> bytes:
    try:
        pdf = await asyncio.get_running_loop().run_in_executor(_renderer(), work, *args)
    except concurrent.futures.process.BrokenProcessPool:  # the PDF process died (killed, out of memory)
        _renderer.cache_clear()
        pdf = await asyncio.get_running_loop().run_in_executor(_renderer(), work, *args)
    if pdf is None:
        raise Unavailable(NO_PANGO)
    return pdf


async def signed_pdf(html: str, key_pem: str, cert_pem: str, secret: str, reason: str) -> bytes:
    """The PDF of a page signed with the office's key (PAdES), made in the PDF process (never kept:
    each is issued once and stored)."""
    return await _in_pdf_process(render_signed, html, key_pem, cert_pem, secret, reason)


async def html_to_pdf(html: str) -> bytes:
    """The PDF of a page: made in the PDF process, or kept from the last time it was asked for."""
    key = hashlib.sha256(html.encode()).hexdigest()
    if key in _kept:
        _kept.move_to_end(key)
        return _kept[key]
    pdf = await _in_pdf_process(render, html)
    _kept[key] = pdf
    while len(_kept) > KEEP:
        _kept.popitem(last=False)
    return pdf
