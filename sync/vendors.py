"""EMR vendors: the partner-sandbox request, its review, the sandbox itself, and certification.

The flow (docs/vendors.md): a vendor with an account asks for sandbox access
(``vendor_register``); a board administrator approves (``vendor_approve``: the product, a sandbox
client, sandbox clinics with synthetic practitioners and citizens, all in one transaction) or
rejects with a reason; the vendor has its sandbox secret shown once (``vendor_credentials_issue``,
the same rotation as production clients); it declares product versions and asks for their
certification; the board certifies or revokes them with a note. Only a certified version reaches
production clinics: ``grant_create`` refuses otherwise, and ``selectors.clinic_ids_for_emr_client``
gives a client whose version is not certified no production clinic at all.

Sandbox and production never meet: sandbox clinics carry ``Clinic.is_sandbox`` (hidden from the
public, figures, open data and the help desk), synthetic citizens ``Citizen.is_synthetic`` (the
only ones who can book there online), sandbox clients ``EmrClient.is_sandbox``.
"""

import datetime as dt
import random
import unicodedata
from collections.abc import Mapping

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import get_application_model

from citizens.models import Citizen, User
from clinics.audit import staff_action_audit
from clinics.models import Clinic, Practitioner, PractitionerRole, Region
from clinics.services_board import BoardQueue

from .credentials import DEFAULT_OVERLAP, client_secret_rotate
from .models import EmrClient, EmrClinicGrant, EmrProduct, EmrProductVersion, EmrVendor

SANDBOX_CLINICS = 2
SANDBOX_PRACTITIONERS_PER_CLINIC = 2
SANDBOX_CITIZENS = 6
_FIRST_NAMES = ["Alice", "Benoît", "Chloé", "David", "Émilie", "François", "Gabrielle", "Hugo"]
_LAST_NAMES = ["Sablon", "Essai", "Fictif", "Modèle", "Exemple", "Témoin"]


def vendor_email_send(*, to: str, language: str, template: str, context: Mapping[str, object]) -> None:
    """A plain-text e-mail to a vendor's technical contact, in the language they wrote in."""
    with translation.override(language or settings.LANGUAGE_CODE):
        subject = render_to_string(f"sync/email/{template}_subject.txt", dict(context)).strip()
        body = render_to_string(f"sync/email/{template}.txt", dict(context))
    EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, [to]).send()


VENDORS = BoardQueue(
    model=EmrVendor,
    purpose="vendor",
    refusal=gettext_lazy("Only a board administrator can decide on EMR vendors."),
    email_field="technical_email",
    email_send=vendor_email_send,
)


# --- registration and review -------------------------------------------------------------------------


def vendor_register(
    *,
    user: User,
    company: str,
    product_name: str,
    technical_email: str,
    language: str,
    now: dt.datetime | None = None,
) -> EmrVendor:
    """Record a vendor's request for sandbox access. One open request (or approved vendor) per account;
    a product name already belonging to another vendor is refused (clinics name products by name)."""
    now = now or timezone.now()
    company, product_name = company.strip(), product_name.strip()
    taken = EmrProduct.objects.filter(name__iexact=product_name).exclude(vendor__iexact=company).exists()
    requested = (
        EmrVendor.objects.filter(
            product_name__iexact=product_name,
            status__in=[EmrVendor.Status.PENDING, EmrVendor.Status.APPROVED],
        )
        .exclude(user=user)
        .exists()
    )
    if taken or requested:
        raise ValidationError(
            _(
                "Another vendor already uses this product name. "
                "Write it as your clinics know it, or contact us."
            )
        )
    try:
        with transaction.atomic():
            return EmrVendor.objects.create(
                user=user,
                company=company,
                product_name=product_name,
                technical_email=technical_email,
                language=language if language in ("fr", "en") else "fr",
                submitted_at=now,
            )
    except IntegrityError as exc:  # vendor_one_open_per_user
        raise ValidationError(_("This account already has a vendor request or a sandbox.")) from exc


def _free_ramq_number(rng: random.Random) -> str:
    # 900000-998999: a range the demo and the benchmarks (999999) do not use, checked anyway.
    while True:
        number = f"9{rng.randrange(99000):05d}"
        if not Practitioner.objects.filter(ramq_number=number).exists():
            return number


def _free_nam(rng: random.Random, last_name: str, first_name: str, birth: dt.date, sex: str) -> str:
    def ascii_upper(text: str) -> str:
        return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().upper()

    letters = (ascii_upper(last_name) + "XXX")[:3] + ascii_upper(first_name)[0]
    month = birth.month + (50 if sex == "F" else 0)
    while True:
        nam = f"{letters}{birth.year % 100:02d}{month:02d}{birth.day:02d}{rng.randrange(90, 100):02d}"
        if not Citizen.objects.filter(nam=nam).exists():
            return nam


def _sandbox_create(vendor: EmrVendor, product: EmrProduct) -> None:
    """The vendor's sandbox clinics (flagged ``is_sandbox``, using its product), synthetic
    practitioners with roles there, synthetic citizens, and the grants of its sandbox client."""
    rng = random.Random(f"sandbox-{vendor.pk}")
    region, _created = Region.objects.get_or_create(code="06", defaults={"name_fr": "Montréal"})
    for n in range(1, SANDBOX_CLINICS + 1):
        clinic = Clinic.objects.create(
            name=f"{vendor.company}: clinique bac à sable {n}",
            address=f"{n} rue du Bac-à-sable",
            city="Montréal",
            postal_code="H0H 0H0",
            latitude=45.5,
            longitude=-73.6,
            region=region,
            emr_product=product.name,
            min_notice=dt.timedelta(0),
            is_sandbox=True,
        )
        vendor.sandbox_clinics.add(clinic)
        EmrClinicGrant.objects.create(product=product, clinic=clinic)
        for _i in range(SANDBOX_PRACTITIONERS_PER_CLINIC):
            practitioner = Practitioner.objects.create(
                ramq_number=_free_ramq_number(rng),
                first_name=rng.choice(_FIRST_NAMES),
                last_name=f"{rng.choice(_LAST_NAMES)} (bac à sable)",
            )
            PractitionerRole.objects.create(practitioner=practitioner, clinic=clinic)
    for _i in range(SANDBOX_CITIZENS):
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        sex = rng.choice(["F", "M"])
        birth = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(365 * 60))
        citizen = Citizen.objects.create(
            nam=_free_nam(rng, last, first, birth, sex),
            card_sequence="01",
            first_name=first,
            last_name=last,
            birth_date=birth,
            sex=sex,
            postal_code="H0H 0H0",
            is_synthetic=True,
        )
        vendor.synthetic_citizens.add(citizen)


def vendor_approve(*, vendor_id: int, by: User, now: dt.datetime | None = None) -> EmrVendor:
    """Approve a pending request: the product (created if new), a sandbox client whose secret nobody
    has seen yet, and the sandbox, all or nothing. The row is locked first, so two reviewers
    approving at once create one sandbox; the second is told it was decided."""
    now = now or timezone.now()
    VENDORS.require_board_admin(by)
    with transaction.atomic():
        vendor = VENDORS.pending_locked(vendor_id)
        product, _created = EmrProduct.objects.get_or_create(vendor=vendor.company, name=vendor.product_name)
        Application = get_application_model()  # noqa: N806
        label = f"{product} sandbox"
        application = Application.objects.create(
            name=label,
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
            # Never shown: the vendor gets its first secret from vendor_credentials_issue.
            client_secret=generate_client_secret(),
            hash_client_secret=True,
        )
        client = EmrClient.objects.create(
            product=product,
            application=application,
            name=label,
            scopes=" ".join(settings.SYNC_SCOPES),
            is_sandbox=True,
        )
        vendor.product = product
        vendor.sandbox_client = client
        _sandbox_create(vendor, product)
        site_url: str = settings.SITE_URL
        VENDORS.approve(
            vendor,
            by=by,
            now=now,
            template="vendor_approved",
            context={"vendor": vendor, "portal_url": site_url.rstrip("/") + reverse("vendors:home")},
            product=product,
            sandbox_client=client,
        )
    vendor.refresh_from_db()
    return vendor


def vendor_reject(*, vendor_id: int, by: User, reason: str, now: dt.datetime | None = None) -> None:
    """Refuse a pending request with a reason that the technical contact reads in their e-mail."""
    now = now or timezone.now()
    reason = VENDORS.rejection_reason(by=by, reason=reason)
    with transaction.atomic():
        vendor = VENDORS.pending_locked(vendor_id)
        VENDORS.reject(
            vendor,
            by=by,
            now=now,
            reason=reason,
            template="vendor_rejected",
            context={"vendor": vendor, "reason": reason},
        )


def vendor_credentials_issue(
    *, vendor: EmrVendor, now: dt.datetime | None = None
) -> tuple[str, str, dt.datetime]:
    """A new sandbox secret, shown once: ``(client_id, secret, old secret valid until)``.

    The same rotation as production clients (``sync.credentials``): the secret is stored hashed and
    the previous one keeps working for the overlap, except the very first time (nobody knew the
    secret made at approval)."""
    now = now or timezone.now()
    if vendor.status != EmrVendor.Status.APPROVED or vendor.sandbox_client is None:
        raise ValidationError(_("The sandbox opens once the board approves the request."))
    with transaction.atomic():
        locked = EmrVendor.objects.select_for_update().get(pk=vendor.pk)
        overlap = DEFAULT_OVERLAP if locked.credentials_issued_at else dt.timedelta(0)
        assert locked.sandbox_client is not None
        secret, old_until = client_secret_rotate(emr_client=locked.sandbox_client, overlap=overlap, now=now)
        EmrVendor.objects.filter(pk=vendor.pk).update(credentials_issued_at=now)
    return locked.sandbox_client.application.client_id, secret, old_until


# --- product versions and certification -----------------------------------------------------------------


def version_declare(*, vendor: EmrVendor, version: str) -> EmrProductVersion:
    """A new version of the vendor's product, in sandbox until the vendor asks for certification."""
    version = version.strip()
    if vendor.status != EmrVendor.Status.APPROVED or vendor.product is None:
        raise ValidationError(_("The sandbox opens once the board approves the request."))
    if not version:
        raise ValidationError(_("Give the version as your product shows it, for example 4.2.1."))
    try:
        with transaction.atomic():
            return EmrProductVersion.objects.create(product=vendor.product, version=version)
    except IntegrityError as exc:  # emr_version_unique
        raise ValidationError(_("This version is already declared.")) from exc


def version_request_certification(
    *, vendor: EmrVendor, version_id: int, now: dt.datetime | None = None
) -> EmrProductVersion:
    """Ask the board to certify one of the vendor's versions (from sandbox, or again after a revocation)."""
    from .conformance import MANUAL, PASSED, conformance_evidence, conformance_report

    now = now or timezone.now()
    # Every mandatory automated scenario must have passed; the manual ones are the board's to check.
    missing = [
        r.title
        for r in conformance_report(vendor=vendor, now=now)
        if r.mandatory and r.status not in (PASSED, MANUAL)
    ]
    if missing:
        raise ValidationError(
            _("Every mandatory conformance scenario must pass first; not yet: %(missing)s.")
            % {"missing": "; ".join(missing)}
        )
    # The conformance report as it stands now goes with the request: what the board reviews.
    changed = EmrProductVersion.objects.filter(
        pk=version_id,
        product_id=vendor.product_id,
        status__in=[EmrProductVersion.Status.SANDBOX, EmrProductVersion.Status.REVOKED],
    ).update(
        status=EmrProductVersion.Status.REQUESTED,
        requested_at=now,
        evidence=conformance_evidence(vendor=vendor, now=now),
    )
    if changed != 1:
        raise ValidationError(_("This version cannot be submitted for certification now."))
    return EmrProductVersion.objects.get(pk=version_id)


def _decide(
    *, version_id: int, by: User, note: str, status: str, allowed_from: list[str], now: dt.datetime | None
) -> EmrProductVersion:
    now = now or timezone.now()
    note = note.strip()
    VENDORS.require_board_admin(by)
    if not note:
        raise ValidationError(_("Write a note: it stays with the decision."))
    with transaction.atomic():
        changed = EmrProductVersion.objects.filter(pk=version_id, status__in=allowed_from).update(
            status=status, decided_at=now, decided_by=by, note=note
        )
        if changed != 1:
            raise ValidationError(_("This version is not in a state that allows this decision."))
        staff_action_audit(
            by=by,
            clinic=None,
            action=status[:10],
            resource_type="EmrProductVersion",
            resource_id=version_id,
            purpose="vendor",
            now=now,
        )
    return EmrProductVersion.objects.get(pk=version_id)


def version_certify(
    *, version_id: int, by: User, note: str, now: dt.datetime | None = None
) -> EmrProductVersion:
    """The board confirms a requested version's conformance: clients declaring it may now act for
    production clinics that granted the product."""
    return _decide(
        version_id=version_id,
        by=by,
        note=note,
        status=EmrProductVersion.Status.CERTIFIED,
        allowed_from=[EmrProductVersion.Status.REQUESTED],
        now=now,
    )


def version_revoke(
    *, version_id: int, by: User, note: str, now: dt.datetime | None = None
) -> EmrProductVersion:
    """The board withdraws a certification (or refuses a request): from now on, clients declaring
    this version reach no production clinic (their next request finds none)."""
    return _decide(
        version_id=version_id,
        by=by,
        note=note,
        status=EmrProductVersion.Status.REVOKED,
        allowed_from=[EmrProductVersion.Status.REQUESTED, EmrProductVersion.Status.CERTIFIED],
        now=now,
    )


def product_has_certified_version(product: EmrProduct) -> bool:
    return product.versions.filter(status=EmrProductVersion.Status.CERTIFIED).exists()


def grant_create(*, product: EmrProduct, clinic: Clinic, by: User | None = None) -> EmrClinicGrant:
    """Connect a production clinic to a product (its clients may act for the clinic): only a product
    with a certified version, and never a sandbox clinic (those get their grants at approval)."""
    if clinic.is_sandbox:
        raise ValidationError(_("A sandbox clinic is connected only to its vendor's sandbox."))
    if not product_has_certified_version(product):
        raise ValidationError(_("Only a product with a certified version can be connected to a clinic."))
    if clinic.emr_product != product.name:
        raise ValidationError(_("The clinic does not use this product."))
    grant, _created = EmrClinicGrant.objects.get_or_create(
        product=product, clinic=clinic, revoked_at=None, defaults={"granted_by": by}
    )
    return grant


# --- reads --------------------------------------------------------------------------------------------


def vendor_for_user(user: User) -> EmrVendor | None:
    """The account's vendor: its open request or approved sandbox, else its last rejected request."""
    if not user.is_authenticated:
        return None
    rows = EmrVendor.objects.filter(user_id=user.pk).select_related("product", "sandbox_client__application")
    return (
        rows.filter(status__in=[EmrVendor.Status.PENDING, EmrVendor.Status.APPROVED]).first()
        or rows.order_by("-submitted_at").first()
    )


def vendor_queue(*, status: str) -> list[EmrVendor]:
    """Vendor requests in one state, oldest first (the board reviews in order of arrival)."""
    return list(EmrVendor.objects.filter(status=status).order_by("submitted_at", "pk"))


def vendor_sandbox(vendor: EmrVendor) -> dict[str, object]:
    """What the vendor needs to test: its sandbox clinics with their schedules (practitioner roles),
    and its synthetic citizens (synthetic NAMs: no real person's data)."""
    clinics = list(vendor.sandbox_clinics.order_by("pk"))
    roles = list(
        PractitionerRole.objects.filter(clinic__in=clinics)
        .select_related("practitioner")
        .order_by("clinic_id", "pk")
    )
    return {
        "clinics": [(clinic, [r for r in roles if r.clinic_id == clinic.pk]) for clinic in clinics],
        "citizens": list(vendor.synthetic_citizens.order_by("pk")),
    }


def versions_of_vendor(vendor: EmrVendor) -> list[EmrProductVersion]:
    if vendor.product_id is None:
        return []
    return list(EmrProductVersion.objects.filter(product_id=vendor.product_id).order_by("created_at", "pk"))


def versions_queue(*, status: str) -> list[EmrProductVersion]:
    return list(
        EmrProductVersion.objects.filter(status=status)
        .select_related("product")
        .order_by("requested_at", "pk")
    )
