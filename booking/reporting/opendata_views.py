"""Serve the open-data files the task wrote: public, cacheable, never computed per request.

The manifest is small and read whole; Slot files can be large and are streamed from disk (in
production a CDN or the web server in front caches them for ``OPENDATA_MAX_AGE``).
"""

from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.utils.http import http_date
from django.views.decorators.http import require_safe

from .opendata import MANIFEST, root


def _cacheable(response: HttpResponseBase, path: Path) -> HttpResponseBase:
    response["Cache-Control"] = f"public, max-age={settings.OPENDATA_MAX_AGE}"
    response["Last-Modified"] = http_date(path.stat().st_mtime)
    response["Access-Control-Allow-Origin"] = "*"  # open data: any site may read it
    return response


@require_safe
def manifest(request: HttpRequest) -> HttpResponseBase:
    path = root() / MANIFEST
    try:
        body = path.read_bytes()
    except FileNotFoundError:
        raise Http404 from None
    return _cacheable(HttpResponse(body, content_type="application/json"), path)


@require_safe
def ndjson_file(request: HttpRequest, name: str) -> HttpResponseBase:
    path = root() / f"{name}.ndjson"
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise Http404 from None
    return _cacheable(FileResponse(handle, content_type="application/fhir+ndjson"), path)
