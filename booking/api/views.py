"""The citizen JSON API: identify, search, hold, book, list, cancel.

Thin callers: each view validates its input with a nested serializer, counts the request against
its rate limit, calls one service or selector and serializes the answer. Every rule lives in
``booking.services``/``booking.selectors``/``citizens.services``; every error leaves through
``booking.api.errors.exception_handler`` in one shape.
"""

import datetime as dt
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from booking import errors
from booking.models import Appointment, Modality, Slot
from booking.patients import patient_of_appointment, patient_resolve
from booking.selectors import (
    MAX_DAYS_AHEAD,
    MAX_PAGE,
    QUEBEC_TZ,
    RADII_KM,
    TIME_OF_DAY,
    Path,
    SlotQuery,
    appointment_get_for_citizen,
    appointment_list_for_citizen,
    next_free_slots,
    noshow_reminder_due,
    slot_search,
)
from booking.services import appointment_book, appointment_cancel, appointment_reschedule, slot_hold
from citizens.models import Citizen, Dependant
from citizens.nam import NamError, parse_nam
from citizens.selectors import citizen_care, dependants_of
from citizens.services import citizen_identify
from config import metrics, ratelimit

from .auth import CitizenPrincipal, citizen_token_make
from .errors import nam_error_message
from .serializers import (
    AppointmentSerializer,
    ErrorSerializer,
    NamedChoiceField,
    SlotSerializer,
    appointment_data,
    visit_reason_field,
)

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

TAGS_IDENTITY = ["identity"]
TAGS_SLOTS = ["slots"]
TAGS_APPOINTMENTS = ["appointments"]

POSTAL_CODE_RE = re.compile(r"^[A-Z]\d[A-Z](\d[A-Z]\d)?$")


def _error(description: str, *examples: OpenApiExample) -> OpenApiResponse:
    return OpenApiResponse(response=ErrorSerializer, description=description, examples=list(examples))


def _example(name: str, status_code: int, code: str, message: str, **extra: Any) -> OpenApiExample:
    return OpenApiExample(
        name,
        value={"error": {"code": code, "message": message, **extra}},
        response_only=True,
        status_codes=[str(status_code)],
    )


ERROR_400 = _error(
    "Invalid input; `fields` holds one or more messages per field.",
    _example(
        "Invalid field",
        400,
        "invalid",
        "Some fields are not valid. See the details for each one.",
        fields={"date_from": ["The first day cannot be in the past."]},
    ),
)
ERROR_401 = _error(
    "Missing, expired or invalid token (with `WWW-Authenticate: Bearer`).",
    _example("Expired token", 401, "token_expired", "Your session has expired. Identify again."),
)
ERROR_429 = _error(
    "Too many requests; wait `Retry-After` seconds.",
    _example(
        "Rate limited",
        429,
        "rate_limited",
        "Too many attempts. Please try again in 42 seconds.",
        retry_after=42,
    ),
)
ERROR_404_SLOT = _error(
    "The slot does not exist or is no longer offered.",
    _example("Unknown slot", 404, "slot_not_found", "This time does not exist or is no longer offered."),
)
ERROR_409_SLOT = _error(
    "Someone else holds or booked the slot (`alternatives`: the next free times nearby), your hold "
    "expired (`hold_expired`), or you already have an appointment at that time (`patient_overlap`).",
    _example(
        "Slot taken",
        409,
        "slot_unavailable",
        "Sorry, this time was just taken by someone else.",
        alternatives=[],
    ),
)
ERROR_403_ELIGIBLE = _error(
    "The slot is reserved for other patients (`not_eligible`).",
    _example("Not eligible", 403, "not_eligible", "This time is reserved for other patients."),
)
ERROR_422_BOOK = _error(
    "A booking rule refused it: `reason_not_accepted`, `too_soon`, `limit_reached`.",
    _example(
        "Too soon", 422, "too_soon", "This time is too soon to be booked online. Please call the clinic."
    ),
)
ERROR_404_APPOINTMENT = _error(
    "No such appointment among yours.",
    _example("Not found", 404, "appointment_not_found", "We could not find this appointment."),
)
ERROR_503 = _error(
    "The slot is being booked by many people at once; try again in a few seconds.",
    _example("Busy", 503, "busy", "The service is very busy. Please try again in a few seconds."),
)


def _citizen(request: Request) -> Citizen:
    # Only called behind IsAuthenticated, and CitizenTokenAuthentication is the API's authenticator.
    return cast(CitizenPrincipal, request.user).citizen


def _patient_field() -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=1,
        required=False,
        help_text="Act for one of your dependants (an id from GET /dependants); omit it for yourself. "
        "Their own family doctor, limits and appointments apply.",
    )


ERROR_404_PATIENT = _error(
    "`patient` is not one of your dependants (`patient_not_found`).",
    _example(
        "Not your dependant", 404, "patient_not_found", "This person is not among the people in your care."
    ),
)


NOSHOW_NOTICE = _(
    "Some recent appointments were missed without being cancelled. When you cannot come, please cancel "
    "as early as you can: the time is then offered to someone else who needs it."
)


def _slot_unavailable_with_alternatives(
    exc: errors.SlotUnavailable, *, citizen: Citizen, slot_id: int, reason: str = ""
) -> errors.SlotUnavailable:
    """The same conflict, now carrying the next free times of the same doctor or clinic."""
    like = Slot.objects.select_related("clinic").filter(pk=slot_id).first()
    alternatives: list[Slot] = []
    if like is not None:
        alternatives = next_free_slots(citizen=citizen, like=like, reason=reason)
    return errors.SlotUnavailable(
        exc.message,
        # The DRF stubs type the instance as one Slot; many=True takes a list of them.
        extra={**exc.extra, "alternatives": SlotSerializer(alternatives, many=True).data},  # type: ignore[arg-type]
    )


# --- identify ---------------------------------------------------------------------------------


class IdentifyApi(APIView):
    """Identify with the health-insurance card and get a short-lived bearer token."""

    # No token needed to get one; a stale token in the header must not stop a citizen from
    # identifying again.
    authentication_classes: list[type[BaseAuthentication]] = []
    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer[Any]):
        first_name = serializers.CharField(max_length=100)
        last_name = serializers.CharField(max_length=100)
        nam = serializers.CharField(
            max_length=20,
            help_text="Health-insurance number (NAM) as printed on the card, e.g. TREM 5551 2314.",
            error_messages={
                "required": _("Enter your health-insurance number."),
                "blank": _("Enter your health-insurance number."),
            },
        )
        card_sequence = serializers.RegexField(
            r"^\s*\d{2}\s*$",
            help_text="The two-digit sequence number printed after the NAM.",
            error_messages={
                "invalid": _("The sequence number is the 2 digits printed after the number on your card.")
            },
        )
        birth_date = serializers.DateField(help_text="YYYY-MM-DD.")

        class Meta:
            ref_name = "IdentifyRequest"

        def validate_nam(self, value: str) -> str:
            try:
                return parse_nam(value).value
            except NamError as exc:
                raise serializers.ValidationError(nam_error_message(exc.code)) from exc

        def validate_card_sequence(self, value: str) -> str:
            return value.strip()

        def validate_birth_date(self, value: dt.date) -> dt.date:
            if value > timezone.localdate():
                raise serializers.ValidationError(_("The date of birth cannot be in the future."))
            return value

    class OutputSerializer(serializers.Serializer[Any]):
        class CitizenSerializer(serializers.Serializer[Any]):
            first_name = serializers.CharField()
            enrolled = serializers.BooleanField(help_text="Enrolled with a family doctor.")
            family_doctor = serializers.CharField(allow_null=True)
            gmf = serializers.CharField(allow_null=True, help_text="The family doctor's GMF.")

            class Meta:
                ref_name = "IdentifiedCitizen"

        token = serializers.CharField(help_text="Send as `Authorization: Bearer <token>`.")
        expires_at = serializers.DateTimeField(default_timezone=dt.UTC, help_text="UTC.")
        citizen = CitizenSerializer()

        class Meta:
            ref_name = "IdentifyResponse"

    @extend_schema(
        operation_id="identify",
        tags=TAGS_IDENTITY,
        auth=[],
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            400: ERROR_400,
            403: _error(
                "The details do not match a valid card. The message never says which detail.",
                _example(
                    "Not identified",
                    403,
                    "identification_failed",
                    "We could not confirm these details with a valid health-insurance card. …",
                ),
            ),
            429: ERROR_429,
        },
        examples=[
            OpenApiExample(
                "Card details",
                value={
                    "first_name": "Julie",
                    "last_name": "Gagnon",
                    "nam": "GAGJ 8553 1401",
                    "card_sequence": "01",
                    "birth_date": "1985-03-14",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        citizen = citizen_identify(**data.validated_data, ip=ratelimit.client_ip(request))
        care = citizen_care(citizen=citizen)
        token, expires_at = citizen_token_make(citizen)
        payload = {
            "token": token,
            "expires_at": expires_at,
            "citizen": {
                "first_name": citizen.first_name,
                "enrolled": care.is_enrolled,
                "family_doctor": care.practitioner_name or None,
                "gmf": care.gmf_name or None,
            },
        }
        return Response(self.OutputSerializer(payload).data)


# --- search ------------------------------------------------------------------------------------

SUGGESTIONS = {
    "wider_radius": _("Try a wider radius (radius_km)."),
    "near": _("Search the clinics near you (path=near): they take patients without a family doctor."),
    "fewer_filters": _("Remove some filters (reason, time of day, modality, language, last day)."),
    "info_sante": _("If you need advice now, call Info-Santé 811, 24 hours a day."),
}


class SlotSearchApi(APIView):
    """Free times the citizen may book, one page at a time, on one of the three paths."""

    permission_classes = [IsAuthenticated]

    class FilterSerializer(serializers.Serializer[Any]):
        path = serializers.ChoiceField(
            choices=[
                (Path.MINE, _("My family doctor")),
                (Path.GMF, _("A professional of my GMF")),
                (Path.NEAR, _("A clinic near me")),
            ],
            help_text="mine: my family doctor; gmf: my doctor's GMF; near: clinics near a postal code.",
        )
        reason = visit_reason_field(required=False, help_text="Reason for the visit.")
        date_from = serializers.DateField(
            required=False, help_text="First day (Quebec time), today or later."
        )
        date_to = serializers.DateField(required=False, help_text="Last day, on or after date_from.")
        time_of_day = serializers.ChoiceField(
            choices=[(k, k) for k in TIME_OF_DAY], required=False, help_text="In the clinic's local time."
        )
        modality = serializers.ChoiceField(choices=Modality.choices, required=False)
        language = serializers.RegexField(
            r"^[a-zA-Z]{2}$",
            required=False,
            help_text="A language the practitioner speaks (ISO 639-1), e.g. fr or en.",
            error_messages={"invalid": _("A two-letter language code, e.g. fr or en.")},
        )
        postal_code = serializers.CharField(
            required=False,
            max_length=10,
            help_text="near only: where to search from (A1A 1A1 or its first 3 characters); "
            "defaults to the citizen's own postal code.",
        )
        radius_km = serializers.ChoiceField(
            choices=[(r, str(r)) for r in RADII_KM], default=25, help_text="near only."
        )
        sort = serializers.ChoiceField(
            choices=[("soonest", _("Soonest first")), ("nearest", _("Nearest first"))],
            default="soonest",
            help_text="nearest: near only.",
        )
        page = serializers.IntegerField(min_value=1, max_value=MAX_PAGE, default=1)
        patient = _patient_field()

        class Meta:
            ref_name = "SlotSearchFilter"

        def validate_postal_code(self, value: str) -> str:
            compact = re.sub(r"[\s\-]", "", value).upper()
            if not POSTAL_CODE_RE.match(compact):
                raise serializers.ValidationError(_("Unknown postal code; format A1A 1A1."))
            return compact

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            today = timezone.localdate(timezone.now(), QUEBEC_TZ)
            horizon = today + timedelta(days=MAX_DAYS_AHEAD)
            date_from, date_to = attrs.get("date_from"), attrs.get("date_to")
            problems: dict[str, StrOrPromise] = {}
            if date_from and date_from < today:
                problems["date_from"] = _("The first day cannot be in the past.")
            elif date_from and date_from > horizon:
                problems["date_from"] = _("Search at most %(days)d days ahead.") % {"days": MAX_DAYS_AHEAD}
            if date_to and date_to < (date_from or today):
                problems["date_to"] = (
                    _("The last day cannot be before the first day.")
                    if date_from
                    else _("The last day cannot be in the past.")
                )
            elif date_to and date_to > horizon:
                problems["date_to"] = _("Search at most %(days)d days ahead.") % {"days": MAX_DAYS_AHEAD}
            if problems:
                raise serializers.ValidationError(problems)
            return attrs

    class OutputSerializer(serializers.Serializer[Any]):
        class SuggestionSerializer(serializers.Serializer[Any]):
            code = NamedChoiceField(choices=[(k, k) for k in SUGGESTIONS], component_name="SuggestionCode")
            message = serializers.CharField()

            class Meta:
                ref_name = "SearchSuggestion"

        results = SlotSerializer(many=True)
        page = serializers.IntegerField()
        next_page = serializers.IntegerField(allow_null=True)
        suggestions = SuggestionSerializer(many=True, help_text="What to try next, when nothing was found.")

        class Meta:
            ref_name = "SlotSearchResult"

    @extend_schema(
        operation_id="slots_search",
        tags=TAGS_SLOTS,
        parameters=[FilterSerializer],
        responses={
            200: OutputSerializer,
            400: ERROR_400,
            401: ERROR_401,
            422: _error(
                "The path does not apply to this citizen: `not_enrolled` (no family doctor: use near) "
                "or `no_gmf`.",
                _example(
                    "Not enrolled",
                    422,
                    "not_enrolled",
                    "You are not enrolled with a family doctor … Search the clinics near you (path=near).",
                    fields={"path": ["…"]},
                ),
            ),
            404: ERROR_404_PATIENT,
            429: ERROR_429,
        },
    )
    def get(self, request: Request) -> Response:
        citizen = _citizen(request)
        ratelimit.hit_with_ip("search", f"c{citizen.pk}", request)
        # An empty parameter (a form's blank select) means "no filter".
        params = {key: value for key, value in request.query_params.dict().items() if value.strip()}
        filters = self.FilterSerializer(data=params)
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        query = SlotQuery(
            path=f["path"],
            reason=f.get("reason", ""),
            date_from=f.get("date_from"),
            date_to=f.get("date_to"),
            time_of_day=f.get("time_of_day", ""),
            modality=f.get("modality", ""),
            language=f.get("language", "").lower(),
            fsa=f.get("postal_code", "")[:3],
            radius_km=int(f["radius_km"]),
            sort=f["sort"],
            page=f["page"],
        )
        patient, _ = patient_resolve(citizen=citizen, dependant_id=f.get("patient"))
        result = slot_search(citizen=patient, query=query)
        payload = {
            "results": [item.slot for item in result.items],
            "page": result.page,
            "next_page": result.page + 1 if result.has_next else None,
            "suggestions": [{"code": code, "message": SUGGESTIONS[code]} for code in result.suggestions],
        }
        return Response(self.OutputSerializer(payload).data)


# --- hold --------------------------------------------------------------------------------------


class HoldCreateApi(APIView):
    """Hold a free time for a few minutes while the citizen confirms; one hold per citizen."""

    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer[Any]):
        slot_id = serializers.IntegerField(min_value=1)
        reschedule_appointment_id = serializers.IntegerField(
            min_value=1,
            required=False,
            help_text="Your booked appointment this time would replace (see the reschedule endpoint): "
            "the limit of upcoming appointments then does not refuse the hold.",
        )
        patient = _patient_field()

        class Meta:
            ref_name = "HoldRequest"

    class OutputSerializer(serializers.Serializer[Any]):
        hold_token = serializers.CharField(
            help_text="Send it with the booking; it also makes the booking idempotent."
        )
        slot_id = serializers.IntegerField()
        expires_at = serializers.DateTimeField(default_timezone=dt.UTC, help_text="UTC.")
        notice = serializers.CharField(
            allow_null=True,
            help_text="A reminder of the rules to show before the booking is confirmed (the patient "
            "missed several recent appointments without cancelling), in the request's language; null "
            "when there is none. Never a refusal.",
        )

        class Meta:
            ref_name = "Hold"

    @extend_schema(
        operation_id="holds_create",
        tags=TAGS_SLOTS,
        request=InputSerializer,
        responses={
            201: OutputSerializer,
            400: ERROR_400,
            401: ERROR_401,
            403: ERROR_403_ELIGIBLE,
            404: ERROR_404_SLOT,
            409: ERROR_409_SLOT,
            422: ERROR_422_BOOK,
            429: ERROR_429,
        },
    )
    def post(self, request: Request) -> Response:
        citizen = _citizen(request)
        ratelimit.hit_with_ip("hold", f"c{citizen.pk}", request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        slot_id = data.validated_data["slot_id"]
        to_reschedule = None
        if "reschedule_appointment_id" in data.validated_data:
            to_reschedule = appointment_get_for_citizen(
                citizen=citizen, appointment_id=data.validated_data["reschedule_appointment_id"]
            )
            if to_reschedule is None:
                raise errors.AppointmentNotFound
            # Moving an appointment holds for its own patient, whatever ``patient`` says.
            patient, _ = patient_of_appointment(citizen=citizen, appointment=to_reschedule)
        else:
            patient, _ = patient_resolve(citizen=citizen, dependant_id=data.validated_data.get("patient"))
        try:
            hold = slot_hold(slot_id=slot_id, citizen=patient, to_reschedule=to_reschedule)
        except errors.SlotUnavailable as exc:
            raise _slot_unavailable_with_alternatives(exc, citizen=patient, slot_id=slot_id) from exc
        metrics.record_hold(Appointment.Channel.CITIZEN_API)
        notice = NOSHOW_NOTICE if noshow_reminder_due(citizen=patient) else None
        payload = {
            "hold_token": hold.token,
            "slot_id": hold.slot_id,
            "expires_at": hold.expires,
            "notice": notice,
        }
        return Response(self.OutputSerializer(payload).data, status=status.HTTP_201_CREATED)


# --- appointments ------------------------------------------------------------------------------


class AppointmentsApi(APIView):
    """``GET``: the citizen's appointments. ``POST``: book one. Two actions, one URL."""

    permission_classes = [IsAuthenticated]

    class ListOutputSerializer(serializers.Serializer[Any]):
        upcoming = AppointmentSerializer(many=True, help_text="Booked and not yet over, soonest first.")
        past = AppointmentSerializer(
            many=True, help_text="Over or cancelled, most recent first (at most 20)."
        )

        class Meta:
            ref_name = "AppointmentList"

    class BookInputSerializer(serializers.Serializer[Any]):
        slot_id = serializers.IntegerField(min_value=1)
        hold_token = serializers.CharField(
            required=False,
            allow_blank=True,
            default="",
            max_length=64,
            help_text="From POST /holds. A retry with the same token returns the same appointment (200).",
        )
        reason = visit_reason_field(help_text="Reason for the visit.")
        patient = _patient_field()

        class Meta:
            ref_name = "BookRequest"

    @extend_schema(
        operation_id="appointments_list",
        tags=TAGS_APPOINTMENTS,
        parameters=[
            OpenApiParameter(
                "patient",
                int,
                description="A dependant's id (GET /dependants): their appointments instead of yours.",
            )
        ],
        responses={200: ListOutputSerializer, 401: ERROR_401, 404: ERROR_404_PATIENT},
    )
    def get(self, request: Request) -> Response:
        citizen = _citizen(request)
        patient, _ = patient_resolve(citizen=citizen, dependant_id=request.query_params.get("patient"))
        appointments = appointment_list_for_citizen(citizen=patient)
        return Response(self.ListOutputSerializer(appointments, context={"caller": citizen}).data)

    @extend_schema(
        operation_id="appointments_book",
        tags=TAGS_APPOINTMENTS,
        request=BookInputSerializer,
        responses={
            201: OpenApiResponse(AppointmentSerializer, description="Booked."),
            200: OpenApiResponse(
                AppointmentSerializer,
                description="A retry with the same hold token: the appointment it booked.",
            ),
            400: ERROR_400,
            401: ERROR_401,
            403: ERROR_403_ELIGIBLE,
            404: ERROR_404_SLOT,
            409: ERROR_409_SLOT,
            422: ERROR_422_BOOK,
            429: ERROR_429,
            503: ERROR_503,
        },
        examples=[
            OpenApiExample(
                "Book a held time",
                value={"slot_id": 1234, "hold_token": "9f1c2e0d4b6a48d3a1e5c7b9d2f4a6c8", "reason": "urgent"},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        citizen = _citizen(request)
        ratelimit.hit_with_ip("book", f"c{citizen.pk}", request)
        data = self.BookInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        patient, dependant = patient_resolve(citizen=citizen, dependant_id=d.get("patient"))
        started = timezone.now()
        try:
            appointment = appointment_book(
                slot_id=d["slot_id"],
                citizen=patient,
                reason=d["reason"],
                channel=Appointment.Channel.CITIZEN_API,
                hold_token=d["hold_token"],
                booked_by_user=citizen.account if dependant else None,
            )
        except errors.SlotUnavailable as exc:
            raise _slot_unavailable_with_alternatives(
                exc, citizen=patient, slot_id=d["slot_id"], reason=d["reason"]
            ) from exc
        # appointment_book returns the first result for a retried hold token: a row created before
        # this request started is that earlier booking. (Two retries racing each other may both
        # see 201; both carry the same appointment.)
        created = appointment.created_at >= started
        return Response(
            appointment_data(appointment, caller=citizen),  # AppointmentSerializer's shape, written out
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class AppointmentDetailApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="appointments_get",
        tags=TAGS_APPOINTMENTS,
        responses={200: AppointmentSerializer, 401: ERROR_401, 404: ERROR_404_APPOINTMENT},
    )
    def get(self, request: Request, appointment_id: int) -> Response:
        citizen = _citizen(request)
        appointment = appointment_get_for_citizen(citizen=citizen, appointment_id=appointment_id)
        if appointment is None:
            raise errors.AppointmentNotFound
        return Response(AppointmentSerializer(appointment, context={"caller": citizen}).data)


class AppointmentCancelApi(APIView):
    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer[Any]):
        reason = NamedChoiceField(
            choices=[
                c for c in Appointment.CancelReason.choices if c[0] in Appointment.CITIZEN_CANCEL_REASONS
            ],
            component_name="CancelReason",
            help_text="Why you cancel.",
        )

        class Meta:
            ref_name = "CancelRequest"

    @extend_schema(
        operation_id="appointments_cancel",
        tags=TAGS_APPOINTMENTS,
        request=InputSerializer,
        responses={
            200: AppointmentSerializer,
            400: ERROR_400,
            401: ERROR_401,
            404: ERROR_404_APPOINTMENT,
            409: _error(
                "Already cancelled or over (`not_cancellable`).",
                _example(
                    "Not cancellable", 409, "not_cancellable", "This appointment can no longer be cancelled."
                ),
            ),
            422: _error(
                "Past the clinic's online cancellation cut-off (`cancel_too_late`): call the clinic.",
                _example(
                    "Too late",
                    422,
                    "cancel_too_late",
                    "It is too late to cancel online. Please call the clinic.",
                ),
            ),
            429: ERROR_429,
        },
    )
    def post(self, request: Request, appointment_id: int) -> Response:
        citizen = _citizen(request)
        ratelimit.hit("cancel", f"c{citizen.pk}")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        appointment = appointment_get_for_citizen(citizen=citizen, appointment_id=appointment_id)
        if appointment is None:
            raise errors.AppointmentNotFound
        appointment = appointment_cancel(appointment=appointment, reason=data.validated_data["reason"])
        return Response(AppointmentSerializer(appointment, context={"caller": citizen}).data)


class AppointmentRescheduleApi(APIView):
    """Move an appointment to another time in one step: the new time is booked and the old one
    released together, or nothing changes."""

    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer[Any]):
        slot_id = serializers.IntegerField(min_value=1, help_text="The new time (hold it first).")
        hold_token = serializers.CharField(
            max_length=64,
            required=False,
            allow_blank=True,
            default="",
            help_text="From POST /holds with reschedule_appointment_id; makes the call idempotent.",
        )
        reason = visit_reason_field(required=False, help_text="Defaults to the current appointment's reason.")

        class Meta:
            ref_name = "RescheduleRequest"

    @extend_schema(
        operation_id="appointments_reschedule",
        tags=TAGS_APPOINTMENTS,
        request=InputSerializer,
        responses={
            201: AppointmentSerializer,
            200: AppointmentSerializer,
            400: ERROR_400,
            401: ERROR_401,
            403: ERROR_403_ELIGIBLE,
            404: ERROR_404_APPOINTMENT,
            409: ERROR_409_SLOT,
            422: ERROR_422_BOOK,
            429: ERROR_429,
        },
    )
    def post(self, request: Request, appointment_id: int) -> Response:
        citizen = _citizen(request)
        ratelimit.hit_with_ip("book", f"c{citizen.pk}", request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        appointment = appointment_get_for_citizen(citizen=citizen, appointment_id=appointment_id)
        if appointment is None:
            raise errors.AppointmentNotFound
        started = timezone.now()
        try:
            new = appointment_reschedule(
                appointment=appointment,
                new_slot_id=d["slot_id"],
                channel=Appointment.Channel.CITIZEN_API,
                hold_token=d["hold_token"],
                reason=d.get("reason", ""),
            )
        except errors.SlotUnavailable as exc:
            raise _slot_unavailable_with_alternatives(
                exc, citizen=appointment.citizen or citizen, slot_id=d["slot_id"], reason=d.get("reason", "")
            ) from exc
        created = new.created_at >= started
        return Response(
            AppointmentSerializer(new, context={"caller": citizen}).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


# --- dependants --------------------------------------------------------------------------------


class DependantsApi(APIView):
    """The people in the caller's care, whose ids go in the ``patient`` parameter of the search,
    hold, booking and list calls. They are added and removed on the website, with an account."""

    permission_classes = [IsAuthenticated]

    class OutputSerializer(serializers.Serializer[Dependant]):
        id = serializers.IntegerField(help_text="Pass it as `patient`.")
        first_name = serializers.CharField(source="citizen.first_name")
        last_name = serializers.CharField(source="citizen.last_name")
        relationship = serializers.ChoiceField(choices=Dependant.Relationship.choices)

        class Meta:
            ref_name = "Dependant"

    @extend_schema(
        operation_id="dependants_list",
        tags=TAGS_APPOINTMENTS,
        responses={200: OutputSerializer(many=True), 401: ERROR_401},
    )
    def get(self, request: Request) -> Response:
        links = dependants_of(guardian=_citizen(request))
        # The DRF stubs type the instance as one Dependant; many=True takes a list of them.
        return Response(self.OutputSerializer(links, many=True).data)  # type: ignore[arg-type]
