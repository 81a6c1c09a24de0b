"""The waitlist in the citizen API: ask to be told, list, withdraw, and answer an offer.

The same services as the web pages (``booking.waitlist.services``) and the same input checks
(``booking.waitlist.rules``, ``booking.forms.postal_code_fsa``); the same rate limits as the
pages (asking counts as a search, accepting as a booking, withdrawing and declining as a
cancellation). An offer's link token arrives by e-mail or text message; the API answers it with that
token in the body (never in a URL) and the caller's own bearer token: both are needed.
"""

import datetime as dt
from typing import Any

from django import forms
from django.utils import timezone, translation
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from booking import errors
from booking.forms import postal_code_fsa
from booking.patients import patient_resolve
from booking.selectors import QUEBEC_TZ, RADII_KM
from booking.waitlist import selectors, services
from booking.waitlist.models import WaitlistRequest
from booking.waitlist.rules import contact_errors, window_errors
from citizens.models import Citizen
from citizens.selectors import dependant_of_person
from citizens.services import citizen_update_contact
from config import ratelimit

from .serializers import (
    AppointmentSerializer,
    NamedChoiceField,
    PatientSerializer,
    SlotSerializer,
    visit_reason_field,
)
from .views import (
    ERROR_400,
    ERROR_401,
    ERROR_403_ELIGIBLE,
    ERROR_404_PATIENT,
    ERROR_422_BOOK,
    ERROR_429,
    ERROR_503,
    _citizen,
    _error,
    _example,
    _patient_field,
)

TAGS_WAITLIST = ["waitlist"]

ERROR_404_REQUEST = _error(
    "No such waiting-list request among yours or your dependants'.",
    _example("Not found", 404, "waitlist_request_not_found", "We could not find this waiting-list request."),
)
ERROR_422_REQUEST = _error(
    "The request cannot be made: `waitlist_limit_reached` (the person already has the maximum "
    "number of waiting requests), `waitlist_scope_unknown` (no family doctor or GMF for that path, "
    "or an unknown postal code), `waitlist_no_contact` (no way to tell you on that channel).",
    _example(
        "Limit",
        422,
        "waitlist_limit_reached",
        "You already have the maximum number of waiting-list requests. Withdraw one before adding another.",
    ),
)
ERROR_404_OFFER = _error(
    "The token matches no offer of yours or of your dependants (`offer_not_found`).",
    _example("Unknown offer", 404, "offer_not_found", "This link does not match any offer."),
)
ERROR_409_OFFER = _error(
    "Already used (`offer_used`), or the slot conflicts with the booking rules (as for a booking).",
    _example("Used", 409, "offer_used", "This offer was already used: the appointment is booked."),
)
ERROR_410_OFFER = _error(
    "The offer is over: `offer_expired` (unanswered in time) or `offer_closed` (declined, withdrawn).",
    _example("Expired", 410, "offer_expired", "This offer has expired."),
)


class OfferSerializer(serializers.Serializer[Any]):
    slot = SlotSerializer(help_text="The time held for you.")
    expires_at = serializers.DateTimeField(
        default_timezone=dt.UTC, help_text="UTC. Answer before it; after, the time goes to the next person."
    )

    class Meta:
        ref_name = "WaitlistOffer"


class WaitlistRequestSerializer(serializers.Serializer[WaitlistRequest]):
    """A waiting request as its citizen (or their guardian) sees it."""

    id = serializers.IntegerField()
    patient = serializers.SerializerMethodField(
        help_text="Who it is for: `dependant_id` null for the caller themself, else a dependant's id."
    )
    path = serializers.ChoiceField(choices=WaitlistRequest.Path.choices)
    reason = visit_reason_field()
    postal_code = serializers.CharField(source="fsa", help_text="near: the area's first 3 characters.")
    radius_km = serializers.IntegerField(allow_null=True, help_text="near only.")
    date_from = serializers.DateField()
    date_to = serializers.DateField()
    time_of_day = serializers.CharField(help_text="morning, afternoon, evening, or empty for any time.")
    channel = NamedChoiceField(choices=WaitlistRequest.Channel.choices, component_name="WaitlistChannel")
    language = serializers.CharField()
    status = serializers.ChoiceField(choices=WaitlistRequest.Status.choices)
    created_at = serializers.DateTimeField(default_timezone=dt.UTC, help_text="UTC: your place in line.")
    expires_at = serializers.DateTimeField(default_timezone=dt.UTC, help_text="UTC: the end of the window.")
    offer = serializers.SerializerMethodField(
        help_text="A time offered to you now, held until `expires_at`; null when none. Book it with "
        "POST /waitlist/offers/accept and the token of the message you received."
    )

    class Meta:
        ref_name = "WaitlistRequest"

    @extend_schema_field(PatientSerializer())
    def get_patient(self, request: WaitlistRequest) -> dict[str, Any]:
        caller: Citizen = self.context["caller"]
        patient = request.citizen
        if patient is None:
            # Anonymized (an ended request, long past): no longer anyone's, so not the caller's
            # either; the views list and withdraw only the caller's own and never get here.
            raise errors.WaitlistRequestNotFound
        dependant_id = None
        if patient.pk != caller.pk:
            link = dependant_of_person(guardian=caller, citizen_id=patient.pk)
            dependant_id = link.pk if link else None
        return {"dependant_id": dependant_id, "first_name": patient.first_name}

    @extend_schema_field(OfferSerializer(allow_null=True))
    def get_offer(self, request: WaitlistRequest) -> dict[str, Any] | None:
        offer = getattr(request, "live_offer", None)
        if offer is None:
            return None
        return OfferSerializer({"slot": offer.slot, "expires_at": offer.expires_at}).data


class WaitlistApi(APIView):
    """``GET``: your waiting requests and your dependants'. ``POST``: ask to be told when a time
    matching a path, reason, area and window opens (docs/waitlist.md: first come, first offered)."""

    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer[Any]):
        path = serializers.ChoiceField(
            choices=WaitlistRequest.Path.choices,
            help_text="mine: my family doctor; gmf: my doctor's GMF; near: clinics near a postal code.",
        )
        reason = visit_reason_field(help_text="Reason for the visit.")
        postal_code = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=10,
            help_text="near only: A1A 1A1 or its first 3 characters; defaults to the patient's own.",
        )
        radius_km = serializers.ChoiceField(
            choices=[(r, str(r)) for r in RADII_KM], default=25, help_text="near only."
        )
        date_from = serializers.DateField(help_text="First day (Quebec time), today or later.")
        date_to = serializers.DateField(help_text="Last day; the request ends after it.")
        time_of_day = serializers.ChoiceField(
            choices=WaitlistRequest.TimeOfDay.choices, required=False, help_text="In the clinic's time."
        )
        channel = NamedChoiceField(
            choices=WaitlistRequest.Channel.choices,
            component_name="WaitlistChannel",
            help_text="How to tell you (sms only where text messages are enabled).",
        )
        email = serializers.EmailField(
            required=False, allow_blank=True, help_text="Saved to your file; defaults to the one on file."
        )
        mobile = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=20,
            help_text="Saved to your file; defaults to the one on file.",
        )
        language = serializers.ChoiceField(
            choices=[("fr", "Français"), ("en", "English")],
            required=False,
            help_text="Of the messages; defaults to your preferred language.",
        )
        patient = _patient_field()

        class Meta:
            ref_name = "WaitlistRequestCreate"

        def validate_postal_code(self, value: str) -> str:
            try:
                return postal_code_fsa(value)
            except forms.ValidationError as exc:
                raise serializers.ValidationError(exc.messages) from exc

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            caller: Citizen = self.context["caller"]
            today = timezone.localdate(timezone.now(), QUEBEC_TZ)
            problems = {
                **window_errors(attrs.get("date_from"), attrs.get("date_to"), today=today),
                **contact_errors(
                    attrs.get("channel"),
                    email=attrs.get("email") or caller.email,
                    mobile=attrs.get("mobile") or caller.mobile,
                ),
            }
            if problems:
                raise serializers.ValidationError({name: [message] for name, message in problems.items()})
            return attrs

    @extend_schema(
        operation_id="waitlist_list",
        tags=TAGS_WAITLIST,
        responses={200: WaitlistRequestSerializer(many=True), 401: ERROR_401},
    )
    def get(self, request: Request) -> Response:
        caller = _citizen(request)
        requests = selectors.waitlist_requests_for_citizen(citizen=caller)
        # The DRF stubs type the instance as one request; many=True takes a list of them.
        serializer = WaitlistRequestSerializer(requests, many=True, context={"caller": caller})  # type: ignore[arg-type]
        return Response(serializer.data)

    @extend_schema(
        operation_id="waitlist_create",
        tags=TAGS_WAITLIST,
        request=InputSerializer,
        responses={
            201: WaitlistRequestSerializer,
            400: ERROR_400,
            401: ERROR_401,
            404: ERROR_404_PATIENT,
            422: ERROR_422_REQUEST,
            429: ERROR_429,
        },
    )
    def post(self, request: Request) -> Response:
        caller = _citizen(request)
        ratelimit.hit_with_ip("search", f"c{caller.pk}", request)
        data = self.InputSerializer(data=request.data, context={"caller": caller})
        data.is_valid(raise_exception=True)
        d = data.validated_data
        patient, dependant = patient_resolve(citizen=caller, dependant_id=d.get("patient"))
        language = d.get("language") or caller.preferred_language or translation.get_language() or "fr"
        if d.get("email") or d.get("mobile") or d.get("language"):
            citizen_update_contact(
                citizen=caller,
                email=d.get("email") or caller.email,
                mobile=d.get("mobile") or caller.mobile,
                language=language,
            )
        created = services.waitlist_request_create(
            citizen=patient,
            requested_by=caller if dependant else None,
            path=d["path"],
            reason=d["reason"],
            date_from=d["date_from"],
            date_to=d["date_to"],
            time_of_day=d.get("time_of_day") or "",
            fsa=d.get("postal_code") or "",
            radius_km=int(d["radius_km"]),
            channel=d["channel"],
            language=language,
        )
        created.live_offer = None  # type: ignore[attr-defined]
        return Response(
            WaitlistRequestSerializer(created, context={"caller": caller}).data,
            status=status.HTTP_201_CREATED,
        )


class WaitlistWithdrawApi(APIView):
    """Withdraw a waiting request (yours or a dependant's); a time offered for it passes on."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="waitlist_withdraw",
        tags=TAGS_WAITLIST,
        request=None,
        responses={200: WaitlistRequestSerializer, 401: ERROR_401, 404: ERROR_404_REQUEST, 429: ERROR_429},
    )
    def post(self, request: Request, request_id: int) -> Response:
        caller = _citizen(request)
        ratelimit.hit("cancel", f"c{caller.pk}")
        withdrawn = services.waitlist_request_withdraw(citizen=caller, request_id=request_id)
        withdrawn.live_offer = None  # type: ignore[attr-defined]
        return Response(WaitlistRequestSerializer(withdrawn, context={"caller": caller}).data)


class OfferTokenSerializer(serializers.Serializer[Any]):
    token = serializers.CharField(
        max_length=100, help_text="The token at the end of the link in the offer's message (/offre/<token>/)."
    )

    class Meta:
        ref_name = "OfferAnswer"


class WaitlistOfferAcceptApi(APIView):
    """Book the time offered to you (or to your dependant): one POST, with the message's single-use
    token. The same booking service as the offer's web page; a second POST gets ``offer_used``."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="waitlist_offer_accept",
        tags=TAGS_WAITLIST,
        request=OfferTokenSerializer,
        responses={
            201: OpenApiResponse(AppointmentSerializer, description="Booked."),
            400: ERROR_400,
            401: ERROR_401,
            403: ERROR_403_ELIGIBLE,
            404: ERROR_404_OFFER,
            409: ERROR_409_OFFER,
            410: ERROR_410_OFFER,
            422: ERROR_422_BOOK,
            429: ERROR_429,
            503: ERROR_503,
        },
    )
    def post(self, request: Request) -> Response:
        caller = _citizen(request)
        ratelimit.hit_with_ip("book", f"c{caller.pk}", request)
        data = OfferTokenSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        appointment = services.waitlist_offer_accept(token=data.validated_data["token"], caller=caller)
        return Response(
            AppointmentSerializer(appointment, context={"caller": caller}).data,
            status=status.HTTP_201_CREATED,
        )


class WaitlistOfferDeclineApi(APIView):
    """Decline the time offered: it goes to the next person at once; your request keeps waiting."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="waitlist_offer_decline",
        tags=TAGS_WAITLIST,
        request=OfferTokenSerializer,
        responses={
            204: OpenApiResponse(description="Declined."),
            400: ERROR_400,
            401: ERROR_401,
            404: ERROR_404_OFFER,
            409: ERROR_409_OFFER,
            410: ERROR_410_OFFER,
            429: ERROR_429,
        },
    )
    def post(self, request: Request) -> Response:
        caller = _citizen(request)
        ratelimit.hit("cancel", f"c{caller.pk}")
        data = OfferTokenSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.waitlist_offer_decline(token=data.validated_data["token"], caller=caller)
        return Response(status=status.HTTP_204_NO_CONTENT)
