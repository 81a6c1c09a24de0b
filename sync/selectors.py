"""Reads for the EMR synchronization API, always scoped to the clinics an EMR client may act for.

``clinic_ids_for_emr_client`` is the one place that decides that scope; every other function here
takes its result and never widens it.
"""

from collections.abc import Collection, Iterable
from datetime import datetime

from django.db.models import Exists, F, Max, OuterRef, QuerySet, Subquery

from booking.models import Appointment, Slot
from citizens.models import Citizen
from clinics.models import Clinic, Gmf, Practitioner, PractitionerRole

from .models import AgendaSnapshot, EmrClient, EmrClinicGrant, EmrProductVersion, EmrVendor, SyncConflict


def clinic_ids_for_emr_client(client: EmrClient) -> set[int]:
    """Clinics ``client`` may act for: an active grant to its product, and the clinic still uses it.

    Sandbox and production never meet (docs/vendors.md): a sandbox client acts only for its own
    vendor's sandbox clinics; a production client only for production clinics, and only while the
    product version it declares is certified (revoking the version drops every clinic at once).
    """
    if not client.is_active:
        return set()
    grants = EmrClinicGrant.objects.filter(
        product_id=client.product_id,
        revoked_at__isnull=True,
        clinic__emr_product=F("product__name"),
        clinic__is_sandbox=client.is_sandbox,
    )
    if client.is_sandbox:
        grants = grants.filter(
            clinic_id__in=EmrVendor.sandbox_clinics.through.objects.filter(
                emrvendor__sandbox_client_id=client.pk
            ).values("clinic_id")
        )
    else:
        if client.product_version_id is None:
            return set()
        grants = grants.filter(
            product__versions__pk=client.product_version_id,
            product__versions__status=EmrProductVersion.Status.CERTIFIED,
        )
    return set(grants.values_list("clinic_id", flat=True))


def location_queryset(clinic_ids: Collection[int]) -> QuerySet[Clinic]:
    return Clinic.objects.filter(pk__in=clinic_ids)


def organization_queryset(clinic_ids: Collection[int]) -> QuerySet[Gmf]:
    return Gmf.objects.filter(pk__in=Clinic.objects.filter(pk__in=clinic_ids).values("gmf_id"))


def practitioner_queryset(clinic_ids: Collection[int]) -> QuerySet[Practitioner]:
    return Practitioner.objects.filter(
        pk__in=PractitionerRole.objects.filter(clinic_id__in=clinic_ids).values("practitioner_id")
    )


def role_queryset(clinic_ids: Collection[int]) -> QuerySet[PractitionerRole]:
    """Practitioner roles, which are also the Schedules (one schedule per role)."""
    return PractitionerRole.objects.filter(clinic_id__in=clinic_ids).select_related("clinic")


def slot_queryset(clinic_ids: Collection[int]) -> QuerySet[Slot]:
    """Every slot of the clinics, withdrawn ones included (a read of one answers 410 Gone).

    Only columns the API shows are loaded: the hold columns (who holds a slot, until when) never
    leave the booking core.
    """
    return Slot.objects.filter(clinic_id__in=clinic_ids).only(
        "id",
        "role_id",
        "clinic_id",
        "start",
        "end",
        "reasons",
        "audience",
        "modality",
        "status",
        "source",
        "external_id",
        "version",
        "updated_at",
    )


def appointment_queryset(clinic_ids: Collection[int]) -> QuerySet[Appointment]:
    """Every appointment of the clinics, with what its FHIR form needs and nothing of the citizen's
    but the internal id. ``emr_product_id`` is the clinic's current EMR product (its identifier system)."""
    product = EmrClinicGrant.objects.filter(
        clinic_id=OuterRef("clinic_id"),
        revoked_at__isnull=True,
        product__name=OuterRef("clinic__emr_product"),
    ).values("product_id")[:1]
    return (
        Appointment.objects.filter(clinic_id__in=clinic_ids)
        .annotate(
            role_id=F("slot__role_id"),
            practitioner_id=F("slot__practitioner_id"),
            emr_product_id=Subquery(product),
        )
        .only(
            "id",
            "slot_id",
            "citizen_id",
            "clinic_id",
            "start",
            "end",
            "reason",
            "status",
            "channel",
            "reference",
            "external_id",
            "cancel_reason",
            "version",
            "updated_at",
        )
    )


def conflict_queryset(clinic_ids: Collection[int]) -> QuerySet[SyncConflict]:
    """The agenda conflicts of these clinics (FHIR Task), open and resolved."""
    return SyncConflict.objects.filter(clinic_id__in=clinic_ids)


def emr_product_names() -> list[str]:
    """The names of the EMR products known to the service, as ``Clinic.emr_product`` stores them."""
    from .models import EmrProduct

    return sorted(set(EmrProduct.objects.values_list("name", flat=True)))


def patient_for_nam(clinic_ids: Collection[int], nam: str) -> Citizen | None:
    """The citizen with this NAM, only if they have (or had) an appointment at one of the clinics:
    an EMR learns nothing of anyone else, not even that the NAM exists. Only what the minimal FHIR
    Patient shows is loaded."""
    if not clinic_ids:
        return None
    booked_here = Appointment.objects.filter(citizen_id=OuterRef("pk"), clinic_id__in=clinic_ids)
    return (
        Citizen.objects.filter(nam=nam)
        .filter(Exists(booked_here))
        .only("id", "nam", "first_name", "last_name", "birth_date")
        .first()
    )


def last_snapshot_by_clinic(clinic_ids: Iterable[int]) -> dict[int, datetime]:
    """When each clinic's EMR last sent an agenda snapshot for any of its schedules: one of the two
    signals of sync health on the analysts' dashboard (the other is booking's outbox). ``clinic_ids``
    may be a queryset of ids (a subquery)."""
    rows = (
        AgendaSnapshot.objects.filter(role__clinic_id__in=clinic_ids)
        .values_list("role__clinic_id")
        .annotate(at=Max("received_at"))
        .order_by()
    )
    return dict(rows)
