"""Patient lookup by NAM: ``POST /fhir/r4/Patient/_search`` with ``identifier=<system>|<NAM>`` in the
form body, and nothing else.

A NAM must never travel in a URL (proxies, access logs and browser histories keep URLs), so a GET
with search parameters, or parameters in the query string of the POST, is refused with an
OperationOutcome that says to POST them; the refusal never repeats what was sent. The lookup finds a
citizen only if they have an appointment at one of the client's clinics (``patient_for_nam``); the
answer is a searchset Bundle of at most one minimal Patient, whose links carry no parameter. Each
Patient sent writes one audit row. Nothing here logs the body. Scope: ``system/Patient.read``.
"""

import logging
import re
from typing import Any

from django.http import QueryDict
from rest_framework.parsers import FormParser
from rest_framework.request import Request
from rest_framework.response import Response

from citizens.nam import normalize_nam

from .audit import audit_record
from .fhir import resources
from .fhir.errors import FhirError
from .models import AuditEvent
from .selectors import patient_for_nam
from .views import FhirView, fhir_base_url

logger = logging.getLogger(__name__)
USE_POST = (
    "Look a patient up with POST Patient/_search and identifier=<system>|<NAM> in the form body "
    "(Content-Type: application/x-www-form-urlencoded), never in the URL: a URL is kept in logs."
)
NAM_RE = re.compile(r"^[A-Z]{4}\d{8}$")
ALLOWED = {"identifier", "_format"}


class PatientView(FhirView):
    resource_type = "Patient"  # the scope: system/Patient.read

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        if request.META.get("QUERY_STRING") and response.status_code >= 400:
            # Django's own line for a 4xx carries the request, whose repr has the query string (a NAM
            # sent by mistake): log the path only, and mark the response as logged.
            logger.warning("Patient lookup refused (parameters in the URL): %s", request.path)
            response._has_been_logged = True  # type: ignore[attr-defined]
        return response


class PatientTypeView(PatientView):
    """``GET Patient``: refused, whatever the parameters (they may hold a NAM)."""

    def get(self, request: Request) -> Response:
        raise FhirError(400, "not-supported", USE_POST)


class PatientSearchView(PatientView):
    is_search_post = True  # a read: system/Patient.read
    parser_classes = [FormParser]

    def get(self, request: Request) -> Response:
        raise FhirError(405, "not-supported", USE_POST, headers={"Allow": "POST"})

    def post(self, request: Request) -> Response:
        if request.query_params:
            raise FhirError(400, "not-supported", USE_POST)
        form = request.data if isinstance(request.data, QueryDict) else QueryDict()
        unknown = sorted(set(form) - ALLOWED)
        if unknown:
            raise FhirError(
                400,
                "not-supported",
                f"Unknown search parameter(s) {', '.join(unknown)}: use identifier only.",
            )
        values = form.getlist("identifier")
        if len(values) != 1:
            raise FhirError(400, "required", f"Give exactly one identifier: {resources.NAM_SYSTEM}|<NAM>.")
        system, sep, raw = values[0].partition("|")
        nam = normalize_nam(raw)
        if not sep or system != resources.NAM_SYSTEM or not NAM_RE.match(nam):
            # Never echo the value: it may be a NAM.
            raise FhirError(
                400,
                "invalid",
                f"identifier must be {resources.NAM_SYSTEM}|<NAM> (4 letters and 8 digits).",
            )
        citizen = patient_for_nam(self.clinic_ids(), nam)
        entries: list[dict[str, Any]] = []
        base = fhir_base_url(request)
        if citizen is not None:
            audit_record(
                emr_client=self.emr_client,
                action=AuditEvent.Action.SEARCH,
                resource_type="Patient",
                ids=[citizen.pk],
            )
            entries.append(
                {
                    "fullUrl": f"{base}Patient/{citizen.pk}",
                    "resource": resources.patient(citizen),
                    "search": {"mode": "match"},
                }
            )
        return Response(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(entries),
                # The parameters are not repeated: the self link must not carry the NAM.
                "link": [{"relation": "self", "url": f"{base}Patient/_search"}],
                "entry": entries,
            }
        )
