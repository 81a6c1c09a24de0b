"""The FHIR R4 API views: thin callers of ``sync.selectors`` through ``sync.fhir.search``.

Every view takes the calling client's clinics from ``clinic_ids_for_emr_client`` and nothing else;
a resource of another clinic is simply not found (404), never forbidden (403), so that its
existence does not leak.
"""

from typing import Any

from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone
from rest_framework.parsers import FormParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from booking import errors as booking_errors
from booking import services as booking_services
from booking.models import Appointment
from citizens.models import Citizen

from . import slot_ops
from .audit import audit_record
from .capability import capability_statement, smart_configuration
from .conflicts import desk_booking_conflict
from .fhir import resources, writes
from .fhir.auth import (
    EmrClientAuthentication,
    EmrClientRateThrottle,
    EmrPrincipal,
    HasResourceScope,
    emr_client_seen,
)
from .fhir.errors import FhirError, exception_handler
from .fhir.renderers import (
    FhirContentNegotiation,
    FhirJSONParser,
    FhirJSONRenderer,
    PlainJSONParser,
    PlainJSONRenderer,
)
from .fhir.search import RESOURCES, ResourceType, search, searchset
from .models import EmrClient
from .sandbox_requests import sandbox_request_record
from .selectors import appointment_queryset, clinic_ids_for_emr_client, slot_queryset


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
    interaction: str | None = None  # for sandbox_request_record; None: from the method and the URL

    def get_exception_handler(self):
        return exception_handler

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        # ``_user``, not ``user``: reading ``user`` would authenticate again after a refusal.
        principal = getattr(request, "_user", None)
        if isinstance(principal, EmrPrincipal):
            if 200 <= response.status_code < 300:
                emr_client_seen(principal.emr_client)
            # The conformance kit's record: one insert for a sandbox client, nothing otherwise.
            sandbox_request_record(client=principal.emr_client, request=request, response=response, view=self)
        return response

    @property
    def resource_type(self) -> str:
        return self.resource.name

    @property
    def emr_client(self) -> EmrClient:
        principal = self.request.user
        assert isinstance(principal, EmrPrincipal)  # HasResourceScope let only EMR clients in
        return principal.emr_client

    def clinic_ids(self) -> set[int]:
        return clinic_ids_for_emr_client(self.emr_client)

    def audit(self, action: str, ids: list[int]) -> None:
        if self.resource.audited and ids:
            audit_record(emr_client=self.emr_client, action=action, resource_type=self.resource.name, ids=ids)

    def resource_response(self, row: Any, *, status: int = 200, action: str = "read") -> Response:
        """One versioned resource with its ETag (and its audit row when it carries a citizen's data)."""
        self.audit(action, [row.pk])
        headers = {
            "ETag": f'W/"{row.version}"',
            "Last-Modified": row.updated_at.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        }
        if status == 201:
            headers["Location"] = (
                f"{fhir_base_url(self.request)}{self.resource.name}/{row.pk}/_history/{row.version}"
            )
        return Response(self.resource.to_fhir(row), status=status, headers=headers)

    def body(self) -> dict[str, Any]:
        data = self.request.data
        if not isinstance(data, dict) or not data:
            raise FhirError(
                400, "structure", "The body must be a FHIR resource: a JSON object with a resourceType."
            )
        return data


class ReadView(FhirView):
    """``GET [type]/[id]``: 404 outside the client's clinics, 410 for a deleted (withdrawn) slot."""

    def get(self, request: Request, pk: str) -> Response:
        row = self.resource.queryset(self.clinic_ids()).filter(pk=int(pk)).first() if pk.isdigit() else None
        if row is None:
            raise FhirError(404, "not-found", f"{self.resource.name}/{pk} is not known.")
        if self.resource.deleted_status and row.status == self.resource.deleted_status:
            raise FhirError(410, "deleted", f"{self.resource.name}/{pk} was withdrawn.")
        if self.resource.versioned:
            return self.resource_response(row)
        return Response(self.resource.to_fhir(row))


class SearchView(FhirView):
    """``GET [type]?params`` and ``POST [type]/_search`` (form-encoded): a searchset Bundle."""

    def get(self, request: Request) -> Response:
        return self._search(list(request.query_params.lists()))

    def _search(self, params_lists: list[tuple[str, list[str]]]) -> Response:
        params = [(name, value) for name, values in params_lists for value in values]
        page = search(self.resource, self.clinic_ids(), params)
        self.audit("search", [row.pk for row in page.rows])
        return Response(searchset(self.resource, page, base_url=fhir_base_url(self.request)))


class SearchPostView(SearchView):
    is_search_post = True
    interaction = "search"
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


# --- writes --------------------------------------------------------------------------------------


class SlotTypeView(SearchView):
    """``POST Slot`` (create) and ``PUT Slot?identifier=system|value`` (the idempotent upsert)."""

    def post(self, request: Request) -> Response:
        status, row = slot_ops.slot_op_create(self.clinic_ids(), self.body())
        return self.resource_response(row, status=status)

    def put(self, request: Request) -> Response:
        params = [(n, v) for n, vs in request.query_params.lists() for v in vs]
        status, row = slot_ops.slot_op_upsert(self.clinic_ids(), params, self.body())
        return self.resource_response(row, status=status)


class SlotInstanceView(ReadView):
    """``PUT Slot/{id}`` (update a free slot; ``If-Match``) and ``DELETE Slot/{id}`` (withdraw)."""

    def put(self, request: Request, pk: str) -> Response:
        clinic_ids = self.clinic_ids()
        slot_ops.slot_row(clinic_ids, pk)  # 404 before reading the body
        _status, row = slot_ops.slot_op_update(clinic_ids, pk, self.body(), request.headers.get("If-Match"))
        return self.resource_response(row)

    def delete(self, request: Request, pk: str) -> Response:
        status = slot_ops.slot_op_delete(self.clinic_ids(), pk, request.headers.get("If-Match"))
        return Response(status=status)


class AppointmentTypeView(SearchView):
    """``POST Appointment``: a booking taken at the clinic's desk, through the portal's compare-and-set."""

    def post(self, request: Request) -> Response:
        client = self.emr_client
        data = writes.appointment_create_input(self.body(), product_id=client.product_id)
        clinic_ids = self.clinic_ids()
        slot = slot_queryset(clinic_ids).filter(pk=data.slot_id).first()
        if slot is None:
            raise writes.rule(f"Slot/{data.slot_id} is not a slot of your clinics.")
        existing = (
            appointment_queryset(clinic_ids)
            .filter(clinic_id=slot.clinic_id, external_id=data.external_id)
            .first()
        )
        if existing is not None:
            return self.resource_response(existing, action="create")  # a retry: the first result
        # A sandbox client books only its synthetic patients, a production client never one of them
        # (docs/vendors.md); anyone else is an unknown NAM, as for a NAM that does not exist.
        citizen = Citizen.objects.filter(nam=data.nam, is_synthetic=client.is_sandbox).first()
        if citizen is None:
            raise writes.from_booking_error(booking_errors.PatientNotFound())
        started = timezone.now()
        try:
            appointment = booking_services.appointment_book(
                slot_id=slot.pk,
                citizen=citizen,
                reason=data.reason,
                channel=Appointment.Channel.EMR,
                external_id=data.external_id,
            )
        except booking_errors.SlotUnavailable as exc:
            raise _desk_booking_refused(slot, data.external_id) from exc
        except booking_errors.ApplicationError as exc:
            raise writes.from_booking_error(exc) from exc
        row = appointment_queryset(clinic_ids).get(pk=appointment.pk)
        # An earlier appointment comes back when a concurrent retry of the same booking won: 200.
        status = 201 if appointment.created_at >= started else 200
        return self.resource_response(row, status=status, action="create")


def _desk_booking_refused(slot: Any, external_id: str) -> FhirError:
    """409 for a desk booking on a slot booked here first (often one taken while the EMR was offline
    and sent on reconnection): the booking here stands; the conflict is recorded as a Task for the
    clinic, and the OperationOutcome says what to do."""
    conflict = desk_booking_conflict(clinic_id=slot.clinic_id, slot_id=slot.pk, emr_identifier=external_id)
    if conflict is None:
        return writes.from_booking_error(booking_errors.SlotUnavailable())
    return FhirError(
        409,
        "conflict",
        f"Slot/{slot.pk} was booked here first (Appointment/{conflict.appointment_id}); the first "
        "booking committed stands and yours was not made. Book your patient on another free slot "
        f"(GET Slot?schedule=Schedule/{slot.role_id}&status=free) and tell them. The clinic sees "
        f"this as Task/{conflict.pk}: resolve it once done (keep), or move or cancel the other "
        f"booking with notice (POST Task/{conflict.pk}/$resolve), then send your booking again.",
    )


class AppointmentInstanceView(ReadView):
    """``PUT Appointment/{id}``: arrived, fulfilled, noshow, or cancelled by the clinic (``If-Match``)."""

    def put(self, request: Request, pk: str) -> Response:
        clinic_ids = self.clinic_ids()
        row = appointment_queryset(clinic_ids).filter(pk=int(pk)).first() if pk.isdigit() else None
        if row is None:
            raise FhirError(404, "not-found", f"Appointment/{pk} is not known.")
        expected = writes.if_match_version(request.headers.get("If-Match"))
        update = writes.appointment_update_input(self.body(), row=row, pk=pk)
        try:
            if update.status == resources.APPOINTMENT_STATUS[Appointment.Status(row.status)]:
                if expected is not None and expected != row.version:
                    raise booking_errors.VersionMismatch
            elif update.status == "cancelled":
                full = Appointment.objects.get(pk=row.pk)
                booking_services.appointment_cancel(
                    appointment=full,
                    reason=update.cancel_reason,
                    by_clinic=True,
                    channel=Appointment.Channel.EMR,
                    expected_version=expected,
                )
            elif update.status in ("arrived", "fulfilled", "noshow"):
                booking_services.appointment_set_status(
                    appointment_id=row.pk, status=update.status, expected_version=expected
                )
            else:
                raise booking_errors.InvalidStatusChange
        except booking_errors.ApplicationError as exc:
            raise writes.from_booking_error(exc) from exc
        return self.resource_response(appointment_queryset(clinic_ids).get(pk=row.pk), action="update")


# Views with writes, by resource type; the others are read-only (405 with an Allow header on writes).
TYPE_VIEWS: dict[str, type[SearchView]] = {"Slot": SlotTypeView, "Appointment": AppointmentTypeView}
INSTANCE_VIEWS: dict[str, type[ReadView]] = {"Slot": SlotInstanceView, "Appointment": AppointmentInstanceView}
assert set(TYPE_VIEWS) <= set(RESOURCES)
