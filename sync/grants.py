"""Which EMR product's clients may act for a clinic: granting, revoking, changing product.

A clinic is in an EMR client's scope while it holds an active ``EmrClinicGrant`` for the client's
product *and* ``Clinic.emr_product`` still names it (``sync.selectors.clinic_ids_for_emr_client``).
The grant is given by the board, when it approves a registration that names an EMR product
(``emr_grant_on_approval``, called by ``clinics.services_onboarding.registration_approve`` inside
its transaction), or later by the clinic's administrator or a board administrator from the clinic's
EMR access page. It is revoked by either of them, and whenever the clinic changes product
(``emr_product_change``): the old product's clients lose the clinic at once.

Every change locks the clinic's row first (two administrators clicking at once: one change, the
other sees it done), and writes one ``StaffAuditEvent`` (ids only) in the same transaction.
"""

from datetime import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from citizens.models import User
from clinics.audit import staff_action_audit
from clinics.models import Clinic, ClinicMembership
from clinics.selectors import clinic_ids_for_staff
from clinics.selectors_onboarding import is_board_admin

from .models import EmrClinicGrant, EmrProduct
from .vendors import product_has_certified_version

AUDIT_PURPOSE = "emr-access"


def may_manage_emr_access(*, user: User, clinic: Clinic) -> bool:
    """The clinic's administrators and the board administrators; nobody else."""
    return is_board_admin(user) or clinic.pk in clinic_ids_for_staff(
        user, roles=[ClinicMembership.Role.CLINIC_ADMIN]
    )


def emr_products_named(name: str) -> list[EmrProduct]:
    """The known products that ``Clinic.emr_product`` = ``name`` designates (one, in practice)."""
    if not name:
        return []
    return list(EmrProduct.objects.filter(name=name).order_by("vendor"))


def emr_grants_active(*, clinic: Clinic) -> list[EmrClinicGrant]:
    """The clinic's unrevoked grants, with their product (the current one first)."""
    grants = EmrClinicGrant.objects.filter(clinic=clinic, revoked_at__isnull=True).select_related("product")
    return sorted(grants, key=lambda g: (g.product.name != clinic.emr_product, g.product.vendor))


def _locked(clinic: Clinic) -> Clinic:
    return Clinic.objects.select_for_update().get(pk=clinic.pk)


def _grant_current(*, clinic: Clinic, by: User | None, now: datetime) -> int:
    """Grant every known product named by the clinic (inside a transaction, clinic locked); how many
    grants were created."""
    created = 0
    if clinic.is_sandbox:  # a partner sandbox is connected to its vendor's sandbox only
        return 0
    for product in emr_products_named(clinic.emr_product):
        if not product_has_certified_version(product):
            continue  # only certified product versions reach production clinics (docs/vendors.md)
        if EmrClinicGrant.objects.filter(product=product, clinic=clinic, revoked_at__isnull=True).exists():
            continue
        grant = EmrClinicGrant.objects.create(product=product, clinic=clinic, granted_by=by)
        created += 1
        if by is not None:
            staff_action_audit(
                by=by,
                clinic=clinic,
                action="grant",
                resource_type="EmrClinicGrant",
                resource_id=grant.pk,
                purpose=AUDIT_PURPOSE,
                now=now,
            )
    return created


def _revoke(*, clinic: Clinic, by: User, now: datetime, keep_product: str | None = None) -> int:
    grants = EmrClinicGrant.objects.filter(clinic=clinic, revoked_at__isnull=True)
    if keep_product is not None:
        grants = grants.exclude(product__name=keep_product)
    ids = list(grants.values_list("pk", flat=True))
    EmrClinicGrant.objects.filter(pk__in=ids).update(revoked_at=now)
    for grant_id in ids:
        staff_action_audit(
            by=by,
            clinic=clinic,
            action="revoke",
            resource_type="EmrClinicGrant",
            resource_id=grant_id,
            purpose=AUDIT_PURPOSE,
            now=now,
        )
    return len(ids)


def emr_grant_on_approval(*, clinic: Clinic, by: User, now: datetime) -> None:
    """The board approved a clinic that names an EMR product: its clients may act for it.

    A product the service does not know yet (no vendor connected), or with no certified version yet,
    gets no grant: the clinic's administrator or the board grants it from the EMR access page once the
    product is known and certified.
    """
    if clinic.uses_emr:
        _grant_current(clinic=clinic, by=by, now=now)


def emr_access_grant(*, clinic: Clinic, by: User, now: datetime | None = None) -> int:
    """Let the clients of the clinic's EMR product act for it; returns how many grants were made
    (0: already granted)."""
    now = now or timezone.now()
    if not may_manage_emr_access(user=by, clinic=clinic):
        raise PermissionDenied(_("Only the clinic's administrators and the board manage EMR access."))
    with transaction.atomic():
        current = _locked(clinic)
        if not current.uses_emr:
            raise ValidationError(_("This clinic uses no EMR: choose its EMR product first."))
        if not emr_products_named(current.emr_product):
            raise ValidationError(
                _(
                    "No EMR product named %(product)s is connected to the service yet: access can be "
                    "granted once its vendor has its API client."
                )
                % {"product": current.emr_product}
            )
        if not any(product_has_certified_version(p) for p in emr_products_named(current.emr_product)):
            raise ValidationError(_("Only a product with a certified version can be connected to a clinic."))
        return _grant_current(clinic=current, by=by, now=now)


def emr_access_revoke(*, clinic: Clinic, by: User, now: datetime | None = None) -> int:
    """No EMR client may act for the clinic any more (its agenda stays read-only here while it names
    an EMR product); returns how many grants were revoked (0: none was active)."""
    now = now or timezone.now()
    if not may_manage_emr_access(user=by, clinic=clinic):
        raise PermissionDenied(_("Only the clinic's administrators and the board manage EMR access."))
    with transaction.atomic():
        current = _locked(clinic)
        return _revoke(clinic=current, by=by, now=now)


def emr_product_change(
    *, clinic: Clinic, by: User, product: str, grant: bool, now: datetime | None = None
) -> None:
    """The clinic changes EMR product (``product``: a known product's name, or "" for none).

    The grants of every other product are revoked in the same transaction; with ``grant``, the new
    product's clients are granted access at once. With no product, the agenda is run from the web
    pages again; with one, it becomes read-only here (the EMR is the master).
    """
    now = now or timezone.now()
    if not may_manage_emr_access(user=by, clinic=clinic):
        raise PermissionDenied(_("Only the clinic's administrators and the board manage EMR access."))
    product = product.strip()
    if product and not emr_products_named(product):
        raise ValidationError(_("Choose an EMR product from the list, or none."))
    with transaction.atomic():
        current = _locked(clinic)
        if current.emr_product == product:
            raise ValidationError(_("The clinic already uses this product."))
        _revoke(clinic=current, by=by, now=now, keep_product=product or None)
        Clinic.objects.filter(pk=current.pk).update(emr_product=product)
        current.emr_product = product
        staff_action_audit(
            by=by,
            clinic=current,
            action="update",
            resource_type="Clinic",
            resource_id=current.pk,
            purpose=AUDIT_PURPOSE,
            now=now,
        )
        if product and grant:
            _grant_current(clinic=current, by=by, now=now)
    clinic.refresh_from_db()
