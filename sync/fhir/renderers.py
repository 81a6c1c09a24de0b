"""FHIR JSON in and out: ``application/fhir+json`` first, plain ``application/json`` accepted."""

import json
import re
from typing import Any

from rest_framework import exceptions, negotiation, parsers, renderers

from .errors import FhirError

FHIR_JSON = "application/fhir+json"
# The largest resource body we read (a Slot or an Appointment is a few kilobytes).
MAX_BODY_BYTES = 1024 * 1024
# An escaped NUL (\u0000) not itself escaped: PostgreSQL refuses NUL in text, so it is a 400 here.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


class FhirJSONRenderer(renderers.JSONRenderer):
    media_type = FHIR_JSON
    format = "fhir+json"
    charset = "utf-8"
    ensure_ascii = False
    compact = True


class PlainJSONRenderer(FhirJSONRenderer):
    """The same body for clients that ask for ``application/json``."""

    media_type = "application/json"
    format = "json"


class FhirJSONParser(parsers.BaseParser):
    """A FHIR resource: one JSON object with a ``resourceType`` (400 ``structure`` otherwise).

    Not a DRF ``JSONParser``: DRF reads those through ``request.body``, under Django's
    DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB), whatever the endpoint's own limit; this one reads the
    stream itself, bounded by ``max_bytes`` (1 MB; an agenda snapshot's 16 MB).
    """

    media_type = FHIR_JSON
    max_bytes = MAX_BODY_BYTES

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        limit = f"The request body is over {self.max_bytes // (1024 * 1024)} MB."
        if (
            declared
            and str(declared).isascii()
            and str(declared).isdigit()
            and int(declared) > self.max_bytes
        ):
            raise FhirError(413, "too-costly", limit)
        raw = stream.read(self.max_bytes + 1)  # bounded even when no length was declared
        if len(raw) > self.max_bytes:
            raise FhirError(413, "too-costly", limit)
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from exc
        # The substring test first (memchr speed): the regex alone scans a 4 MB snapshot in 90 ms.
        if b"\\u0000" in raw and _NUL_ESCAPE.search(raw):
            raise exceptions.ParseError("A string of the body contains a NUL character (\\u0000).")
        if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
            raise exceptions.ParseError(
                "The body must be a FHIR resource: a JSON object with a resourceType."
            )
        return data


class PlainJSONParser(FhirJSONParser):
    media_type = "application/json"


# FHIR's _format parameter (http://hl7.org/fhir/R4/http.html#mime-type) -> renderer media type.
_FORMATS = {
    "json": FHIR_JSON,
    FHIR_JSON: FHIR_JSON,
    "application/json": "application/json",
}


class FhirContentNegotiation(negotiation.DefaultContentNegotiation):
    """DRF's Accept negotiation, plus ``_format`` (which wins over Accept, as FHIR says)."""

    def select_renderer(self, request, renderers_, format_suffix=None):
        requested = request.query_params.get("_format")
        if requested is None:
            return super().select_renderer(request, renderers_, format_suffix)
        media_type = _FORMATS.get(requested.split(";")[0].strip())
        for renderer in renderers_:
            if media_type and renderer.media_type == media_type:
                return renderer, media_type
        raise exceptions.NotAcceptable(f"_format={requested} is not supported; use json.")
