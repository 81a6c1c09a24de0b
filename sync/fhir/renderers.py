"""FHIR JSON in and out: ``application/fhir+json`` first, plain ``application/json`` accepted."""

from typing import Any

from rest_framework import exceptions, negotiation, parsers, renderers

FHIR_JSON = "application/fhir+json"


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


class FhirJSONParser(parsers.JSONParser):
    """A FHIR resource: one JSON object with a ``resourceType`` (400 ``structure`` otherwise)."""

    media_type = FHIR_JSON

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        data = super().parse(stream, media_type, parser_context)
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
