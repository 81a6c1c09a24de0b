"""Reading Slot and Appointment bodies sent by an EMR: structure, code lists and rules we check ourselves.

Bad structure or an unknown code is ``400`` (``invalid`` / ``code-invalid``); a well-formed body that
breaks a rule is ``422`` (``business-rule``). Nothing here writes: the views hand the result to
``booking.services``, whose ``ApplicationError``s become OperationOutcomes through ``from_booking_error``.
No message ever repeats a NAM.
"""

import datetime as dt
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from booking import errors
from booking.models import Appointment, Audience, Modality, Reason
from clinics.models import PractitionerRole
from sync import selectors

from . import resources
from .errors import FhirError

NAM_RE = re.compile(r"^[A-Z]{4}\d{8}$")
_ISSUE_CODES = {400: "invalid", 404: "not-found", 409: "conflict", 412: "conflict", 422: "business-rule"}


def bad(message: str, code: str = "invalid") -> FhirError:
    return FhirError(400, code, message)


def rule(message: str) -> FhirError:
    return FhirError(422, "business-rule", message)


def from_booking_error(exc: errors.ApplicationError) -> FhirError:
    """A booking rule's refusal as an OperationOutcome (the message is the service's, translated)."""
    if isinstance(exc, errors.InvalidSlot):
        return rule(str(exc.message))
    if isinstance(exc, errors.Busy):
        return FhirError(503, "transient", str(exc.message), headers={"Retry-After": "3"})
    return FhirError(exc.status, _ISSUE_CODES.get(exc.status, "processing"), str(exc.message))


def if_match_version(header: str | None) -> int | None:
    """``If-Match: W/"3"`` (or ``"3"``) → 3; no header → None (an unconditional write)."""
    if not header:
        return None
    match = re.fullmatch(r'\s*(?:W/)?"(\d+)"\s*', header)
    if not match:
        raise bad('If-Match must be a version ETag such as W/"3".')
    return int(match.group(1))


def _resource_type(body: dict[str, Any], expected: str) -> None:
    if body.get("resourceType") != expected:
        raise bad(f"The body must be a {expected} (resourceType {body.get('resourceType')!r}).")


def _body_id(body: dict[str, Any], pk: str | None) -> None:
    if pk is not None and "id" in body and str(body["id"]) != pk:
        raise bad(f"The body's id ({body['id']!r}) is not the id in the URL ({pk}).")


def _instant(body: dict[str, Any], name: str) -> dt.datetime:
    value = body.get(name)
    if not isinstance(value, str) or "T" not in value:
        raise bad(f"{name} must be an instant such as 2026-12-01T13:00:00Z.")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise bad(f"{name} is not a valid instant: {value!r}.") from None
    if moment.tzinfo is None:
        raise bad(f"{name} must carry a UTC offset (Z or ±hh:mm): {value!r}.")
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:  # 0001-01-01T00:00:00+05:00 is before the first representable instant
        raise bad(f"{name} is out of range: {value!r}.") from None


def _codes(concept: Any, system: str, allowed: Collection[str], what: str) -> list[str]:
    """The codes of ``system`` in a CodeableConcept; an unknown one is ``code-invalid``."""
    if not isinstance(concept, dict) or not isinstance(concept.get("coding", []), list):
        raise bad(f"{what} must be a CodeableConcept.")
    codes = []
    for coding in concept.get("coding", []):
        if not isinstance(coding, dict):
            raise bad(f"{what}.coding must hold Coding objects.")
        if coding.get("system") != system:
            continue
        code = coding.get("code")
        if code not in allowed:
            raise bad(f"Unknown {what} code {code!r} (system {system}).", "code-invalid")
        codes.append(str(code))
    if not codes:
        raise bad(f"{what} needs a coding of system {system}.", "code-invalid")
    return codes


def _reference_id(value: Any, resource_type: str, what: str) -> int:
    reference = value.get("reference") if isinstance(value, dict) else None
    if not isinstance(reference, str):
        raise bad(f"{what} must be a reference such as {resource_type}/123.")
    kind, _, pk = reference.rpartition("/")
    if kind.rsplit("/", 1)[-1] != resource_type or not (pk.isascii() and pk.isdigit()):
        raise bad(f"{what} must reference a {resource_type} ({reference!r}).")
    return int(pk)


def _identifiers(body: dict[str, Any]) -> list[dict[str, Any]]:
    value = body.get("identifier", [])
    if not isinstance(value, list) or not all(isinstance(i, dict) for i in value):
        raise bad("identifier must be a list of Identifier objects.")
    return value


# --- Slot ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlotInput:
    role: PractitionerRole
    status: str
    start: dt.datetime
    end: dt.datetime
    reasons: list[str]
    audience: str
    modality: str
    external_id: str  # "" when the body has none


# Built once: ``Reason.values`` builds a new list on every call (0.5 s over a 10,000-slot snapshot).
_REASONS = frozenset(Reason.values)
_MODALITIES = frozenset(Modality.values)
_AUDIENCES = tuple(Audience.values)


def slot_input(
    body: dict[str, Any],
    *,
    clinic_ids: Collection[int],
    pk: str | None = None,
    role: PractitionerRole | None = None,
) -> SlotInput:
    """A Slot body: schedule of the client's clinics, free/busy code, UTC instants, our code lists.

    With ``role`` (an agenda snapshot's schedule, already checked), the body must reference it.
    """
    _resource_type(body, "Slot")
    _body_id(body, pk)
    status = body.get("status")
    if status not in resources.FHIR_SLOT_CODES:
        raise bad(f"Slot.status must be one of {', '.join(resources.FHIR_SLOT_CODES)}.", "code-invalid")
    role_id = _reference_id(body.get("schedule"), "Schedule", "Slot.schedule")
    if role is not None:
        if role_id != role.pk:
            raise rule(f"Slot.schedule must be Schedule/{role.pk}, the snapshot's schedule.")
    else:
        role = selectors.role_queryset(clinic_ids).filter(pk=role_id).first()
    if role is None:
        raise rule(f"Schedule/{role_id} is not a schedule of your clinics.")
    start, end = _instant(body, "start"), _instant(body, "end")
    if start >= end:
        raise rule("Slot.start must be before Slot.end.")
    service_types = body.get("serviceType")
    if not isinstance(service_types, list) or not service_types:
        raise bad("Slot.serviceType must list the reasons the slot accepts.")
    reasons: list[str] = []
    for concept in service_types:
        reasons += _codes(concept, resources.REASON_SYSTEM, _REASONS, "serviceType")
    modality = Modality.IN_PERSON.value
    if "appointmentType" in body:
        (modality,) = _codes(
            body["appointmentType"], resources.MODALITY_SYSTEM, _MODALITIES, "appointmentType"
        )[:1]
    audience = Audience.PUBLIC.value
    extensions = body.get("extension", [])
    if not isinstance(extensions, list):
        raise bad("extension must be a list.")
    for extension in extensions:
        if isinstance(extension, dict) and extension.get("url") == resources.AUDIENCE_EXTENSION:
            code = extension.get("valueCode")
            if code not in _AUDIENCES:
                raise bad(f"Unknown audience code {code!r}: use {', '.join(_AUDIENCES)}.", "code-invalid")
            audience = str(code)
    system = resources.slot_identifier_system(role.clinic_id)
    external_id = ""
    identifiers = _identifiers(body)
    for identifier in identifiers:
        if identifier.get("system") == system:
            value = identifier.get("value")
            if not isinstance(value, str) or not value.strip() or len(value) > 200:
                raise bad("Slot.identifier.value must be 1 to 200 characters.")
            external_id = value
    if identifiers and not external_id:
        raise rule(f"Slot.identifier must use the system {system} (the schedule's clinic).")
    return SlotInput(
        role, str(status), start, end, sorted(set(reasons)), str(audience), modality, external_id
    )


def slot_create_checks(data: SlotInput) -> None:
    if data.status != "free":
        raise rule("Only free slots can be published (Slot.status = free); withdraw one with DELETE.")
    if not data.external_id:
        raise rule(
            "A new slot needs your identifier: Slot.identifier with the system "
            f"{resources.slot_identifier_system(data.role.clinic_id)}."
        )


def conditional_identifier(params: list[tuple[str, str]], clinic_ids: Collection[int]) -> tuple[int, str]:
    """``?identifier=system|value`` (exactly that) → (clinic id, value)."""
    if [name for name, _ in params] != ["identifier"]:
        raise bad("A conditional update takes exactly one parameter: identifier=system|value.")
    system, sep, value = params[0][1].partition("|")
    match = re.fullmatch(re.escape(resources.CLINIC_SYSTEM) + r"/(\d+)/slot", system)
    if not sep or not match or not value:
        raise bad(f"identifier must be {resources.CLINIC_SYSTEM}/<Location id>/slot|<your slot id>.")
    clinic_id = int(match.group(1))
    if clinic_id not in clinic_ids:
        raise rule(f"Location/{clinic_id} is not one of your clinics.")
    return clinic_id, value


# --- Appointment ---------------------------------------------------------------------------------


def _check_app_rules(body: dict[str, Any]) -> None:
    """app-1 to app-4 (http://hl7.org/fhir/R4/appointment.html#invs): the libraries do not check them."""
    participants = body.get("participant")
    if not isinstance(participants, list) or not participants:
        raise bad("Appointment.participant must list at least one participant.")
    for participant in participants:
        if not isinstance(participant, dict):
            raise bad("Appointment.participant must hold objects.")
        if not participant.get("type") and not participant.get("actor"):
            raise rule("app-1: each participant needs a type or an actor.")
        if participant.get("status") not in ("accepted", "declined", "tentative", "needs-action"):
            raise bad(
                "Appointment.participant.status is required (accepted, declined, tentative, needs-action)."
            )
    if ("start" in body) != ("end" in body):
        raise rule("app-2: start and end are both present or both absent.")
    status = body.get("status")
    if "start" not in body and status not in ("proposed", "cancelled", "waitlist"):
        raise rule("app-3: only proposed, cancelled and waitlist appointments may lack start and end.")
    if "cancelationReason" in body and status not in ("cancelled", "noshow"):
        raise rule("app-4: cancelationReason only when the status is cancelled or noshow.")


def _status(body: dict[str, Any]) -> str:
    status = body.get("status")
    if status not in resources.FHIR_APPOINTMENT_CODES:
        raise bad(
            f"Appointment.status must be one of {', '.join(resources.FHIR_APPOINTMENT_CODES)}.",
            "code-invalid",
        )
    return str(status)


@dataclass(frozen=True)
class AppointmentInput:
    slot_id: int
    nam: str
    reason: str
    external_id: str


def appointment_create_input(body: dict[str, Any], *, product_id: int) -> AppointmentInput:
    """A desk booking: status booked, one slot, the patient by NAM (in the body only), our reason, the
    EMR's identifier. Whether the slot is the client's is checked by the caller."""
    _resource_type(body, "Appointment")
    status = _status(body)
    _check_app_rules(body)
    if status != "booked":
        raise rule("An appointment is created with status booked.")
    slots = body.get("slot")
    if not isinstance(slots, list) or len(slots) != 1:
        raise bad("Appointment.slot must reference exactly one Slot.")
    slot_id = _reference_id(slots[0], "Slot", "Appointment.slot")
    _instant(body, "start"), _instant(body, "end")
    if "appointmentType" not in body:
        raise bad("Appointment.appointmentType must give the reason for the visit.", "required")
    (reason,) = _codes(body["appointmentType"], resources.REASON_SYSTEM, Reason.values, "appointmentType")[:1]
    nams = []
    for participant in body["participant"]:
        actor = participant.get("actor") or {}
        if not isinstance(actor, dict):
            raise bad("participant.actor must be a Reference.")
        is_patient = str(actor.get("reference", "")).startswith("Patient/") or actor.get("type") == "Patient"
        if is_patient and not isinstance(actor.get("identifier"), dict):
            raise rule("Identify the patient by NAM: participant.actor.identifier.")
        identifier = actor.get("identifier")
        if isinstance(identifier, dict) and identifier.get("system") == resources.NAM_SYSTEM:
            nams.append(str(identifier.get("value", "")).replace(" ", "").upper())
    if len(nams) != 1:
        raise rule(
            f"Exactly one participant must be the patient, identified by NAM (system {resources.NAM_SYSTEM})."
        )
    if not NAM_RE.match(nams[0]):
        raise bad("The patient's NAM is not well formed (4 letters and 8 digits).")
    system = resources.emr_appointment_system(product_id)
    external_ids = [i.get("value") for i in _identifiers(body) if i.get("system") == system]
    if len(external_ids) != 1 or not isinstance(external_ids[0], str) or not 0 < len(external_ids[0]) <= 200:
        raise rule(f"Appointment.identifier must hold your identifier, system {system}.")
    return AppointmentInput(slot_id, nams[0], reason, external_ids[0])


@dataclass(frozen=True)
class AppointmentUpdate:
    status: str  # the FHIR status asked for
    cancel_reason: str


def appointment_update_input(body: dict[str, Any], *, row: Appointment, pk: str) -> AppointmentUpdate:
    """A status update: only ``status`` (and a cancellation's reason) may change."""
    _resource_type(body, "Appointment")
    _body_id(body, pk)
    status = _status(body)
    _check_app_rules(body)
    slots = body.get("slot")
    if slots is not None and (
        not isinstance(slots, list)
        or [_reference_id(s, "Slot", "Appointment.slot") for s in slots] != [row.slot_id]
    ):
        raise rule("Appointment.slot cannot change; book another slot and cancel this appointment.")
    cancel_reason = Appointment.CancelReason.OTHER.value
    if "cancelationReason" in body:
        concept = body["cancelationReason"]
        if not isinstance(concept, dict):
            raise bad("cancelationReason must be a CodeableConcept.")
        for coding in concept.get("coding", []) if isinstance(concept.get("coding"), list) else []:
            if isinstance(coding, dict) and coding.get("system") == resources.CANCEL_REASON_SYSTEM:
                if coding.get("code") not in Appointment.CancelReason.values:
                    raise bad(f"Unknown cancelationReason code {coding.get('code')!r}.", "code-invalid")
                cancel_reason = str(coding["code"])
    return AppointmentUpdate(status, cancel_reason)
