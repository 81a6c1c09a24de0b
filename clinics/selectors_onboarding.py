"""Reads for onboarding: the board's queue, the flags a reviewer must see, the EMR product names.

The domain apps never import ``sync`` (ARCHITECTURE.md, "Dependencies flow one way"). The list of
EMR products lives there; ``sync`` hands it over at start-up through ``emr_product_source_register``
(sync may import clinics, not the reverse). Without it, the names already used by clinics serve.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Count, QuerySet

from citizens.models import User

from .models import (
    BoardRole,
    Clinic,
    ClinicMembership,
    Gmf,
    Practitioner,
    PractitionerRole,
    RegistrationRequest,
)

_emr_product_sources: list[Callable[[], list[str]]] = []


def emr_product_source_register(source: Callable[[], list[str]]) -> None:
    if source not in _emr_product_sources:
        _emr_product_sources.append(source)


def emr_product_names() -> list[str]:
    """The EMR products a clinic may name, as ``Clinic.emr_product`` stores them."""
    names: set[str] = set()
    for source in _emr_product_sources:
        names.update(source())
    names.update(Clinic.objects.exclude(emr_product="").values_list("emr_product", flat=True).distinct())
    return sorted(names, key=str.casefold)


def gmf_choices() -> QuerySet[Gmf]:
    return Gmf.objects.select_related("region").order_by("name")


def is_board_admin(user: User) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    return BoardRole.objects.filter(user_id=user.pk, role=BoardRole.Role.BOARD_ADMIN, is_active=True).exists()


def registration_queue(*, status: str = RegistrationRequest.Status.PENDING) -> list[RegistrationRequest]:
    """Requests in one state, oldest first (the board reviews in order of arrival)."""
    return list(
        RegistrationRequest.objects.filter(status=status)
        .select_related("region", "gmf")
        .annotate(practitioner_count=Count("practitioners"))
        .order_by("submitted_at" if status == RegistrationRequest.Status.PENDING else "-decided_at")[:200]
    )


@dataclass(frozen=True)
class DuplicateFlag:
    """Something the reviewer must look at before approving: a clinic or request already there."""

    # "clinic_address", "request_address", "practitioner_active", "practitioner_name",
    # "practitioner_requested"
    kind: str
    ramq_number: str = ""
    other: str = ""


def registration_flags(request: RegistrationRequest) -> list[DuplicateFlag]:
    """Possible duplicates: an active clinic or another pending request at the same address, and
    practitioners already active at a clinic or named in another pending request."""
    flags: list[DuplicateFlag] = []
    same_address = {"postal_code": request.postal_code, "address__iexact": request.address.strip()}
    for clinic in Clinic.objects.filter(is_active=True, **same_address).order_by("name"):
        flags.append(DuplicateFlag(kind="clinic_address", other=clinic.name))
    others = RegistrationRequest.objects.filter(status=RegistrationRequest.Status.PENDING).exclude(
        pk=request.pk
    )
    for other in others.filter(**same_address).order_by("submitted_at"):
        flags.append(DuplicateFlag(kind="request_address", other=other.name))
    numbers = [p.ramq_number for p in request.practitioners.all()]
    active_roles = (
        PractitionerRole.objects.filter(
            practitioner__ramq_number__in=numbers, is_active=True, clinic__is_active=True
        )
        .select_related("practitioner", "clinic")
        .order_by("practitioner__ramq_number", "clinic__name")
    )
    for role in active_roles:
        flags.append(
            DuplicateFlag(
                kind="practitioner_active", ramq_number=role.practitioner.ramq_number, other=role.clinic.name
            )
        )
    # A RAMQ number already known under another name: a typo in the number, or in the name.
    known = {p.ramq_number: p for p in Practitioner.objects.filter(ramq_number__in=numbers)}
    for entry in request.practitioners.all():
        existing = known.get(entry.ramq_number)
        if existing is not None and (
            existing.first_name.casefold() != entry.first_name.casefold()
            or existing.last_name.casefold() != entry.last_name.casefold()
        ):
            flags.append(
                DuplicateFlag(
                    kind="practitioner_name",
                    ramq_number=entry.ramq_number,
                    other=f"{existing.first_name} {existing.last_name}",
                )
            )
    for other in others.filter(practitioners__ramq_number__in=numbers).distinct().order_by("submitted_at"):
        shared = sorted(set(numbers) & set(other.practitioners.values_list("ramq_number", flat=True)))
        for number in shared:
            flags.append(DuplicateFlag(kind="practitioner_requested", ramq_number=number, other=other.name))
    return flags


def registration_get(*, request_id: int) -> RegistrationRequest | None:
    return (
        RegistrationRequest.objects.select_related("region", "gmf", "decided_by", "clinic")
        .filter(pk=request_id)
        .first()
    )


def clinic_admins_find(*, clinic_name: str, limit: int = 100) -> list[ClinicMembership]:
    """Active clinic administrators of the clinics whose name contains ``clinic_name``."""
    return list(
        ClinicMembership.objects.filter(
            role=ClinicMembership.Role.CLINIC_ADMIN,
            is_active=True,
            clinic__is_active=True,
            clinic__name__icontains=clinic_name,
        )
        .select_related("user", "clinic")
        .order_by("clinic__name", "user__email")[:limit]
    )
