"""``GET CodeSystem``, ``GET CodeSystem/{id}``, ``GET ValueSet``, ``GET ValueSet/{id}``: our
vocabularies (``sync.fhir.terminology``), read-only and public like the CapabilityStatement (they
hold no personal data). Search parameters: ``url`` and ``_id``; anything else is refused (400)."""

from collections.abc import Callable
from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from .fhir.errors import FhirError
from .fhir.terminology import VOCABULARIES, Vocabulary, code_system, value_set
from .views import PublicFhirView, fhir_base_url

ALLOWED = ("url", "_id", "_count", "_format")


class TerminologyView(PublicFhirView):
    resource_name = "CodeSystem"
    build: Callable[[Vocabulary], dict[str, Any]] = staticmethod(code_system)

    def url_of(self, vocabulary: Vocabulary) -> str:
        return vocabulary.url

    def get(self, request: Request, pk: str | None = None) -> Response:
        if pk is not None:
            vocabulary = VOCABULARIES.get(pk)
            if vocabulary is None:
                raise FhirError(404, "not-found", f"{self.resource_name}/{pk} is not known.")
            return Response(self.build(vocabulary))
        params = request.query_params
        unknown = sorted(set(params) - set(ALLOWED))
        if unknown:
            raise FhirError(
                400,
                "not-supported",
                f"Unknown search parameter(s) {', '.join(unknown)} for {self.resource_name} "
                "(supported: url, _id).",
            )
        rows = list(VOCABULARIES.values())
        for name in params.getlist("url"):
            rows = [v for v in rows if self.url_of(v) in name.split(",")]
        for name in params.getlist("_id"):
            rows = [v for v in rows if v.id in name.split(",")]
        base = fhir_base_url(request)
        return Response(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(rows),
                "link": [{"relation": "self", "url": request.build_absolute_uri()}],
                "entry": [
                    {
                        "fullUrl": f"{base}{self.resource_name}/{v.id}",
                        "resource": self.build(v),
                        "search": {"mode": "match"},
                    }
                    for v in rows
                ],
            }
        )


class ValueSetView(TerminologyView):
    resource_name = "ValueSet"
    build = staticmethod(value_set)

    def url_of(self, vocabulary: Vocabulary) -> str:
        return vocabulary.value_set_url
