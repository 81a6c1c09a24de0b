"""The FHIR R4 API views: thin callers of ``sync.selectors`` through ``sync.fhir.search``.

Every view takes the calling client's clinics from ``clinic_ids_for_emr_client`` and nothing else;
a resource of another clinic is simply not found (404), never forbidden (403), so that its
existence does not leak.
"""

from typing import Any

from django.http import QueryDict
from django.urls import reverse
from rest_framework.parsers import FormParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .capability import capability_statement, smart_configuration
from .fhir.auth import EmrClientAuthentication, EmrClientRateThrottle, EmrPrincipal, HasResourceScope
from .fhir.errors import FhirError, exception_handler
from .fhir.renderers import (
    FhirContentNegotiation,
    FhirJSONParser,
    FhirJSONRenderer,
    PlainJSONParser,
    PlainJSONRenderer,
)
from .fhir.search import ResourceType, search, searchset
from .selectors import clinic_ids_for_emr_client


def fhir_base_url(request: Request) -> str:
    return request.build_absolute_uri(reverse("sync:base"))


class FhirView(APIView):
    schema = None  # described by the CapabilityStatement, not the citizen API's OpenAPI schema
    authentication_classes = [EmrClientAuthentication]
    permission_classes = [HasResourceScope]
    throttle_classes = [EmrClientRateThrottle]
    renderer_classes = [FhirJSONRenderer, PlainJSONRenderer]
    parser_classes = [FhirJSONParser, PlainJSONParser]
    content_negotiation_class = FhirContentNegotiation
    resource: ResourceType = None  # type: ignore[assignment]  # given by as_view(resource=…) in urls.py

    def get_exception_handler(self):
        return exception_handler

    @property
    def resource_type(self) -> str:
        return self.resource.name

    def clinic_ids(self) -> set[int]:
        principal = self.request.user
        assert isinstance(principal, EmrPrincipal)  # HasResourceScope let only EMR clients in
        return clinic_ids_for_emr_client(principal.emr_client)


class ReadView(FhirView):
    """``GET [type]/[id]``: 404 outside the client's clinics, 410 for a deleted (withdrawn) slot."""

    def get(self, request: Request, pk: str) -> Response:
        row = self.resource.queryset(self.clinic_ids()).filter(pk=int(pk)).first() if pk.isdigit() else None
        if row is None:
            raise FhirError(404, "not-found", f"{self.resource.name}/{pk} is not known.")
        if self.resource.deleted_status and row.status == self.resource.deleted_status:
            raise FhirError(410, "deleted", f"{self.resource.name}/{pk} was withdrawn.")
        headers = {}
        if self.resource.versioned:
            headers["ETag"] = f'W/"{row.version}"'
            headers["Last-Modified"] = row.updated_at.strftime("%a, %d %b %Y %H:%M:%S GMT")
        return Response(self.resource.to_fhir(row), headers=headers)


class SearchView(FhirView):
    """``GET [type]?params`` and ``POST [type]/_search`` (form-encoded): a searchset Bundle."""

    def get(self, request: Request) -> Response:
        return self._search(list(request.query_params.lists()))

    def _search(self, params_lists: list[tuple[str, list[str]]]) -> Response:
        params = [(name, value) for name, values in params_lists for value in values]
        page = search(self.resource, self.clinic_ids(), params)
        return Response(searchset(self.resource, page, base_url=fhir_base_url(self.request)))


class SearchPostView(SearchView):
    is_search_post = True
    parser_classes = [FormParser]

    def get(self, request: Request) -> Response:  # only POST here
        raise FhirError(405, "not-supported", "Use POST for _search, or GET on the resource type.")

    def post(self, request: Request) -> Response:
        form = request.data  # a QueryDict from FormParser; {} when the body is empty
        params = list(request.query_params.lists()) + (
            list(form.lists()) if isinstance(form, QueryDict) else []
        )
        return self._search(params)


class PublicFhirView(APIView):
    schema = None
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    renderer_classes = [FhirJSONRenderer, PlainJSONRenderer]
    content_negotiation_class = FhirContentNegotiation

    def get_exception_handler(self):
        return exception_handler


class MetadataView(PublicFhirView):
    """``GET metadata``: the CapabilityStatement, without authentication."""

    def get(self, request: Request) -> Response:
        return Response(
            capability_statement(
                base_url=fhir_base_url(request), token_url=request.build_absolute_uri(reverse("oauth-token"))
            )
        )


class SmartConfigurationView(PublicFhirView):
    renderer_classes = [PlainJSONRenderer]

    def get(self, request: Request) -> Response:
        return Response(smart_configuration(token_url=request.build_absolute_uri(reverse("oauth-token"))))


class UnknownView(PublicFhirView):
    """Anything else under the base: an unknown resource type or interaction (404 ``not-supported``)."""

    def _unknown(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise FhirError(
            404, "not-supported", f"{request.method} {request.path} is not supported by this server."
        )

    get = post = put = patch = delete = _unknown
