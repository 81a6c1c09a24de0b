"""Output shapes shared by several citizen API views, and the error shape for the schema.

Each view keeps its own nested input serializer; what several views return (a slot, an appointment,
the error body) lives here so that it has one definition and one schema component. No serializer
here ever carries a NAM.
"""

import datetime as dt
from typing import TYPE_CHECKING, Any, cast

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent, build_choice_field
from drf_spectacular.utils import Direction, extend_schema_field
from rest_framework import serializers

from booking.models import Appointment, Modality, Reason, Slot
from booking.selectors import appointment_is_cancellable
from citizens.models import Citizen
from citizens.selectors import dependant_of_person
from clinics.models import Clinic, Practitioner

if TYPE_CHECKING:
    from drf_spectacular.openapi import AutoSchema


class NamedChoiceField(serializers.ChoiceField):
    """A choice field whose choice set is one named schema component, whatever the field is called.

    drf-spectacular names enums after field names: ``reason`` is a visit reason on a booking and a
    cancellation reason on a cancel; this keeps one component per code list (VisitReason,
    CancelReason) instead of hashed names and warnings.
    """

    def __init__(self, *args: Any, component_name: str, **kwargs: Any) -> None:
        self.component_name = component_name
        super().__init__(*args, **kwargs)


class NamedChoiceFieldExtension(OpenApiSerializerFieldExtension):
    target_class = NamedChoiceField

    def map_serializer_field(self, auto_schema: "AutoSchema", direction: Direction) -> dict[str, Any]:
        schema = build_choice_field(self.target)
        schema.pop("x-spec-enum-id", None)
        name = self.target.component_name
        component = ResolvedComponent(name=name, type=ResolvedComponent.SCHEMA, object=name, schema=schema)
        auto_schema.registry.register_on_missing(component)
        return component.ref


def visit_reason_field(**kwargs: Any) -> NamedChoiceField:
    return NamedChoiceField(choices=Reason.choices, component_name="VisitReason", **kwargs)


def _utc_field(**kwargs: Any) -> serializers.DateTimeField:
    return serializers.DateTimeField(default_timezone=dt.UTC, read_only=True, **kwargs)


class ClinicSerializer(serializers.Serializer[Clinic]):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    address = serializers.CharField(read_only=True)
    city = serializers.CharField(read_only=True)
    postal_code = serializers.CharField(read_only=True)
    phone = serializers.CharField(read_only=True)

    class Meta:
        ref_name = "Clinic"


class PractitionerSerializer(serializers.Serializer[Practitioner]):
    name = serializers.CharField(source="display_name", read_only=True)
    languages = serializers.ListField(
        source="language_codes", child=serializers.CharField(), read_only=True, help_text="ISO 639-1 codes."
    )

    class Meta:
        ref_name = "Practitioner"


class SlotSerializer(serializers.Serializer[Slot]):
    """A free time a citizen may hold and book."""

    id = serializers.IntegerField(read_only=True)
    start = _utc_field(help_text="UTC.")
    end = _utc_field(help_text="UTC.")
    local_start = serializers.SerializerMethodField(
        help_text="Start in the clinic's time zone, with its offset."
    )
    time_zone = serializers.CharField(source="clinic.time_zone", read_only=True, help_text="IANA time zone.")
    clinic = ClinicSerializer(read_only=True)
    practitioner = PractitionerSerializer(read_only=True)
    modality = serializers.ChoiceField(choices=Modality.choices, read_only=True)
    reasons = serializers.ListField(
        source="reason_codes",
        child=visit_reason_field(),
        read_only=True,
        help_text="The reasons for the visit this time accepts.",
    )
    distance_km = serializers.SerializerMethodField(help_text="From the searched postal code (near me only).")

    class Meta:
        ref_name = "Slot"

    @extend_schema_field(serializers.DateTimeField())
    def get_local_start(self, slot: Slot) -> str:
        return slot.local_start().isoformat()

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_distance_km(self, slot: Slot) -> float | None:
        distance: float | None = getattr(slot, "distance_km", None)  # annotated by the near-me search
        return None if distance is None else round(distance, 1)


class PatientSerializer(serializers.Serializer[Any]):
    dependant_id = serializers.IntegerField(allow_null=True)
    first_name = serializers.CharField()

    class Meta:
        ref_name = "AppointmentPatient"


class AppointmentPractitionerSerializer(serializers.Serializer[Practitioner]):
    name = serializers.CharField(source="display_name", read_only=True)

    class Meta:
        ref_name = "AppointmentPractitioner"


class AppointmentSerializer(serializers.Serializer[Appointment]):
    """An appointment as its own citizen sees it."""

    id = serializers.IntegerField(read_only=True)
    reference = serializers.CharField(
        read_only=True, help_text="Confirmation reference, to quote to the clinic."
    )
    status = serializers.ChoiceField(choices=Appointment.Status.choices, read_only=True)
    start = _utc_field(help_text="UTC.")
    end = _utc_field(help_text="UTC.")
    local_start = serializers.SerializerMethodField(
        help_text="Start in the clinic's time zone, with its offset."
    )
    time_zone = serializers.CharField(source="clinic.time_zone", read_only=True, help_text="IANA time zone.")
    clinic = ClinicSerializer(read_only=True)
    practitioner = AppointmentPractitionerSerializer(source="slot.practitioner", read_only=True)
    reason = visit_reason_field(read_only=True)
    modality = serializers.ChoiceField(source="slot.modality", choices=Modality.choices, read_only=True)
    channel = serializers.ChoiceField(choices=Appointment.Channel.choices, read_only=True)
    cancellable = serializers.SerializerMethodField(
        help_text="Whether it can still be cancelled online (booked, and before the clinic's cut-off)."
    )
    patient = serializers.SerializerMethodField(
        help_text="Who the appointment is for: `dependant_id` is null for the caller themself, else the "
        "id of one of the caller's dependants (GET /dependants)."
    )

    class Meta:
        ref_name = "Appointment"

    @extend_schema_field(PatientSerializer())
    def get_patient(self, appointment: Appointment) -> dict[str, Any]:
        caller: Citizen | None = self.context.get("caller")
        dependant_id = None
        patient = appointment.citizen
        if patient is None:  # anonymized
            return {"dependant_id": None, "first_name": ""}
        if caller is not None and patient.pk != caller.pk:
            link = dependant_of_person(guardian=caller, citizen_id=patient.pk)
            dependant_id = link.pk if link else None
        return {"dependant_id": dependant_id, "first_name": patient.first_name}

    @extend_schema_field(serializers.DateTimeField())
    def get_local_start(self, appointment: Appointment) -> str:
        return appointment.local_start().isoformat()

    def get_cancellable(self, appointment: Appointment) -> bool:
        return appointment_is_cancellable(appointment)


class ErrorBodySerializer(serializers.Serializer[Any]):
    code = serializers.CharField(help_text="Stable, for programs: invalid, slot_unavailable, rate_limited, …")
    message = serializers.CharField(help_text="For people, in the request's language.")
    # The metaclass pops declared fields, so this never shadows Serializer.fields; mypy cannot see that.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Messages per input field, when particular inputs are wrong.",
    )
    retry_after = serializers.IntegerField(required=False, help_text="Seconds to wait (429 only).")
    alternatives = SlotSerializer(
        many=True, required=False, help_text="Next free times nearby (slot_unavailable only)."
    )

    class Meta:
        ref_name = "ErrorBody"


class ErrorSerializer(serializers.Serializer[Any]):
    error = ErrorBodySerializer()

    class Meta:
        ref_name = "Error"


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _utc(value: dt.datetime | None) -> str | None:
    # As DRF's DateTimeField(default_timezone=UTC) writes it: UTC, ISO 8601, "Z" for +00:00.
    if value is None:
        return None
    text = value.astimezone(dt.UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def appointment_data(appointment: Appointment, *, caller: Citizen | None) -> dict[str, Any]:
    """``AppointmentSerializer(appointment, context={"caller": caller}).data``, written out.

    The booking's 201 answer (issue 7): DRF deep-copies the serializer's 15 fields and its two
    nested serializers for every answer, about half a millisecond of the request's CPU. The same
    keys and values, in the same order (tests/booking/test_api_appointment_data.py compares the
    two); a field added to ``AppointmentSerializer`` must be added here."""
    clinic = appointment.clinic
    practitioner = appointment.slot.practitioner
    return {
        "id": appointment.pk,
        "reference": _text(appointment.reference),
        "status": _text(appointment.status),
        "start": _utc(appointment.start),
        "end": _utc(appointment.end),
        "local_start": appointment.local_start().isoformat(),
        "time_zone": _text(clinic.time_zone),
        "clinic": {
            "id": clinic.pk,
            "name": _text(clinic.name),
            "address": _text(clinic.address),
            "city": _text(clinic.city),
            "postal_code": _text(clinic.postal_code),
            "phone": _text(clinic.phone),
        },
        "practitioner": None if practitioner is None else {"name": _text(practitioner.display_name)},
        "reason": _text(appointment.reason),
        "modality": _text(appointment.slot.modality),
        "channel": _text(appointment.channel),
        "cancellable": appointment_is_cancellable(appointment),
        "patient": AppointmentSerializer.get_patient(
            cast(AppointmentSerializer, _CallerContext(caller)), appointment
        ),
    }


class _CallerContext:
    """Enough of a serializer for ``AppointmentSerializer.get_patient``: its context."""

    def __init__(self, caller: Citizen | None) -> None:
        self.context = {"caller": caller}
