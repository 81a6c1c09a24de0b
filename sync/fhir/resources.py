"""Our rows as FHIR R4 resources (plain dicts: fast, and exactly the elements we document).

Identifiers: a resource's ``id`` is our internal id (a Schedule's id is its PractitionerRole's id:
one schedule per role). Business identifiers use the systems below.
"""

import datetime as dt
from typing import Any

from booking.models import Appointment, Modality, Reason, Slot, mask_to_reasons
from citizens.models import Citizen
from clinics.models import Clinic, Gmf, Practitioner, PractitionerRole

BASE = "https://rdv-sante.quebec/fhir"
CLINIC_SYSTEM = f"{BASE}/sid/clinic"
GMF_SYSTEM = f"{BASE}/sid/gmf"
RAMQ_PRACTITIONER_SYSTEM = "https://ramq.gouv.qc.ca/fhir/sid/practitioner"
REASON_SYSTEM = f"{BASE}/CodeSystem/reason"
MODALITY_SYSTEM = f"{BASE}/CodeSystem/modality"
AUDIENCE_SYSTEM = f"{BASE}/CodeSystem/audience"
AUDIENCE_EXTENSION = f"{BASE}/StructureDefinition/slot-audience"
APPOINTMENT_SYSTEM = f"{BASE}/sid/appointment"
CANCEL_REASON_SYSTEM = f"{BASE}/CodeSystem/cancel-reason"
HL7_CANCEL_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"
NAM_SYSTEM = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-qc-patient-healthcare-id"
IDENTIFIER_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"
TIMEZONE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/timezone"
LANGUAGE_SYSTEM = "urn:ietf:bcp:47"

# Our slot status -> FHIR Slot.status. A withdrawn slot (``cancelled``) is a deleted resource: a read
# answers 410 Gone and searches leave it out, so it never maps to a Slot.status.
SLOT_STATUS = {
    Slot.Status.FREE: "free",
    Slot.Status.BOOKED: "busy",
    Slot.Status.BLOCKED: "busy-unavailable",
}
FHIR_SLOT_STATUS = {fhir: ours for ours, fhir in SLOT_STATUS.items()}

# Our appointment status -> FHIR Appointment.status (both cancellations are ``cancelled``).
APPOINTMENT_STATUS = {
    Appointment.Status.BOOKED: "booked",
    Appointment.Status.ARRIVED: "arrived",
    Appointment.Status.FULFILLED: "fulfilled",
    Appointment.Status.NOSHOW: "noshow",
    Appointment.Status.CANCELLED_BY_CITIZEN: "cancelled",
    Appointment.Status.CANCELLED_BY_CLINIC: "cancelled",
    Appointment.Status.ENTERED_IN_ERROR: "entered-in-error",
}
# Every Appointment.status code of FHIR R4, to tell an unknown code (400) from an unsupported one (422).
FHIR_APPOINTMENT_CODES = (
    "proposed",
    "pending",
    "booked",
    "arrived",
    "fulfilled",
    "cancelled",
    "noshow",
    "entered-in-error",
    "checked-in",
    "waitlist",
)
FHIR_SLOT_CODES = ("busy", "free", "busy-unavailable", "busy-tentative", "entered-in-error")

_REASON_LABELS = dict(Reason.choices)
_MODALITY_LABELS = dict(Modality.choices)


def slot_identifier_system(clinic_id: int) -> str:
    """The system of the EMR's own slot identifiers at one clinic (``Slot.external_id``)."""
    return f"{CLINIC_SYSTEM}/{clinic_id}/slot"


def emr_appointment_system(product_id: int) -> str:
    """The system of an EMR product's own appointment identifiers (``Appointment.external_id``)."""
    return f"{BASE}/sid/emr/{product_id}/appointment"


def instant(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def ref(resource_type: str, pk: int) -> dict[str, str]:
    return {"reference": f"{resource_type}/{pk}"}


def location(clinic: Clinic) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Location",
        "id": str(clinic.pk),
        "extension": [{"url": TIMEZONE_EXTENSION, "valueCode": clinic.time_zone}],
        "identifier": [{"system": CLINIC_SYSTEM, "value": str(clinic.pk)}],
        "status": "active" if clinic.is_active else "inactive",
        "name": clinic.name,
        "mode": "instance",
        "address": {
            "use": "work",
            "line": [clinic.address],
            "city": clinic.city,
            "state": "QC",
            "postalCode": clinic.postal_code,
            "country": "CA",
        },
        "position": {"latitude": clinic.latitude, "longitude": clinic.longitude},
    }
    if clinic.phone:
        resource["telecom"] = [{"system": "phone", "value": clinic.phone, "use": "work"}]
    if clinic.gmf_id:
        resource["managingOrganization"] = ref("Organization", clinic.gmf_id)
    return resource


def organization(gmf: Gmf) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": str(gmf.pk),
        "identifier": [{"system": GMF_SYSTEM, "value": str(gmf.pk)}],
        "active": True,
        "name": gmf.name,
    }


def practitioner(person: Practitioner) -> dict[str, Any]:
    name: dict[str, Any] = {"use": "official", "family": person.last_name, "given": [person.first_name]}
    if person.kind == Practitioner.Kind.DOCTOR:
        name["prefix"] = ["Dr"]
    return {
        "resourceType": "Practitioner",
        "id": str(person.pk),
        "identifier": [{"system": RAMQ_PRACTITIONER_SYSTEM, "value": person.ramq_number}],
        "active": True,
        "name": [name],
        "communication": [
            {"coding": [{"system": LANGUAGE_SYSTEM, "code": code}]} for code in person.language_codes
        ],
    }


def practitioner_role(role: PractitionerRole) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "id": str(role.pk),
        "active": role.is_active,
        "practitioner": ref("Practitioner", role.practitioner_id),
        "location": [ref("Location", role.clinic_id)],
    }
    if role.clinic.gmf_id:
        resource["organization"] = ref("Organization", role.clinic.gmf_id)
    return resource


def schedule(role: PractitionerRole) -> dict[str, Any]:
    return {
        "resourceType": "Schedule",
        "id": str(role.pk),
        "active": role.is_active,
        "actor": [
            ref("PractitionerRole", role.pk),
            ref("Practitioner", role.practitioner_id),
            ref("Location", role.clinic_id),
        ],
    }


def _coding(system: str, code: str, display: Any) -> dict[str, str]:
    # ``display`` is a lazy label: str() renders it in the request's language (French by default).
    return {"system": system, "code": code, "display": str(display)}


def slot(row: Slot) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Slot",
        "id": str(row.pk),
        "meta": {"versionId": str(row.version), "lastUpdated": instant(row.updated_at)},
        "extension": [{"url": AUDIENCE_EXTENSION, "valueCode": row.audience}],
    }
    if row.external_id:
        resource["identifier"] = [{"system": slot_identifier_system(row.clinic_id), "value": row.external_id}]
    resource.update(
        {
            "serviceType": [
                {"coding": [_coding(REASON_SYSTEM, code, _REASON_LABELS[code])]}
                for code in mask_to_reasons(row.reasons)
            ],
            "appointmentType": {
                "coding": [_coding(MODALITY_SYSTEM, row.modality, _MODALITY_LABELS[row.modality])]
            },
            "schedule": ref("Schedule", row.role_id),
            "status": SLOT_STATUS[Slot.Status(row.status)],
            "start": instant(row.start),
            "end": instant(row.end),
        }
    )
    return resource


def appointment(row: Appointment) -> dict[str, Any]:
    """An appointment, minimal on the patient: an internal reference only, no NAM, no name.

    ``row`` comes from ``sync.selectors.appointment_queryset`` (which annotates ``role_id``,
    ``practitioner_id`` and ``emr_product_id``).
    """
    identifiers = [{"system": APPOINTMENT_SYSTEM, "value": row.reference}]
    emr_product_id = getattr(row, "emr_product_id", None)
    if row.external_id and emr_product_id:
        identifiers.append({"system": emr_appointment_system(emr_product_id), "value": row.external_id})
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": str(row.pk),
        "meta": {"versionId": str(row.version), "lastUpdated": instant(row.updated_at)},
        "identifier": identifiers,
        "status": APPOINTMENT_STATUS[Appointment.Status(row.status)],
    }
    if row.cancel_reason:
        by = "prov" if row.status == Appointment.Status.CANCELLED_BY_CLINIC else "pat"
        resource["cancelationReason"] = {
            "coding": [
                {"system": CANCEL_REASON_SYSTEM, "code": row.cancel_reason},
                {"system": HL7_CANCEL_REASON_SYSTEM, "code": by},
            ]
        }
    resource.update(
        {
            "appointmentType": {"coding": [_coding(REASON_SYSTEM, row.reason, _REASON_LABELS[row.reason])]},
            "start": instant(row.start),
            "end": instant(row.end),
            "slot": [ref("Slot", row.slot_id)],
            "participant": [
                {"actor": ref("PractitionerRole", row.role_id), "status": "accepted"},  # type: ignore[attr-defined]
                {"actor": ref("Practitioner", row.practitioner_id), "status": "accepted"},  # type: ignore[attr-defined]
                {"actor": ref("Location", row.clinic_id), "status": "accepted"},
                # No patient once anonymized (docs/privacy.md): the EMR keeps its own record.
                *(
                    [{"actor": ref("Patient", row.citizen_id), "status": "accepted"}]
                    if row.citizen_id is not None
                    else []
                ),
            ],
        }
    )
    return resource


def patient(citizen: Citizen) -> dict[str, Any]:
    """A minimal Patient: the id our Appointments reference, the NAM the EMR already gave, and the
    name and birth date to confirm it is the right person. No contact, no address, no sex."""
    return {
        "resourceType": "Patient",
        "id": str(citizen.pk),
        "identifier": [
            {
                "use": "official",
                "type": {"coding": [{"system": IDENTIFIER_TYPE_SYSTEM, "code": "JHN"}]},
                "system": NAM_SYSTEM,
                "value": citizen.nam,
            }
        ],
        "name": [{"use": "official", "family": citizen.last_name, "given": [citizen.first_name]}],
        "birthDate": citizen.birth_date.isoformat(),
    }
