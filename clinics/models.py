"""Reference data (regions, FSAs) and the supply side: GMFs, clinic sites, practitioners."""

import zoneinfo
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext

QUEBEC_TIME_ZONES = [
    ("America/Toronto", "America/Toronto"),
    ("America/Halifax", "America/Halifax"),
    ("America/Blanc-Sablon", "America/Blanc-Sablon"),
]


def validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(_("Unknown time zone.")) from exc


class Region(models.Model):
    """One of Quebec's 18 health regions (région sociosanitaire, codes 01–18)."""

    code = models.CharField(max_length=2, primary_key=True)
    name_fr = models.CharField(max_length=100)

    class Meta:
        ordering = ["code"]
        verbose_name = _("health region")

    def __str__(self) -> str:
        return f"{self.code} {self.name_fr}"


class Fsa(models.Model):
    """A forward sortation area (first three characters of a postal code) and its centroid.

    Centroids come from GeoNames (CC BY 4.0); see data/README.md. The region is approximate and
    serves demo data and unmet-demand figures only.
    """

    code = models.CharField(max_length=3, primary_key=True)
    latitude = models.FloatField()
    longitude = models.FloatField()
    place_name = models.CharField(max_length=120)
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="fsas")

    class Meta:
        ordering = ["code"]
        verbose_name = _("forward sortation area")

    def __str__(self) -> str:
        return f"{self.code} {self.place_name}"


class Gmf(models.Model):
    """A family-medicine group (groupe de médecine de famille): several doctors, one or more sites."""

    name = models.CharField(max_length=200)
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="gmfs")

    class Meta:
        ordering = ["name"]
        verbose_name = _("family-medicine group (GMF)")

    def __str__(self) -> str:
        return self.name


postal_code_validator = RegexValidator(r"^[A-Z]\d[A-Z] \d[A-Z]\d$", _("Postal code format: A1A 1A1."))


class Clinic(models.Model):
    """A clinic site. Times of its slots are shown in its own IANA time zone."""

    name = models.CharField(max_length=200)
    address = models.CharField(max_length=200)
    city = models.CharField(max_length=100)
    postal_code = models.CharField(max_length=7, validators=[postal_code_validator])
    latitude = models.FloatField()
    longitude = models.FloatField()
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="clinics")
    time_zone = models.CharField(
        max_length=40, choices=QUEBEC_TIME_ZONES, default="America/Toronto", validators=[validate_time_zone]
    )
    phone = models.CharField(max_length=20, blank=True)
    gmf = models.ForeignKey(Gmf, null=True, blank=True, on_delete=models.PROTECT, related_name="clinics")
    emr_product = models.CharField(
        max_length=100, blank=True, help_text=_("Empty when the clinic uses the web agenda.")
    )
    min_notice = models.DurationField(
        default=timedelta(hours=1), help_text=_("Online bookings must start at least this long after now.")
    )
    cancel_cutoff_hours = models.PositiveIntegerField(
        default=2,
        validators=[MaxValueValidator(24)],
        help_text=_("Citizens may cancel online until this many hours before the appointment."),
    )
    reminder_three_days = models.BooleanField(
        default=False,
        help_text=_("Also remind citizens three days before (the day before is always sent)."),
    )
    is_active = models.BooleanField(default=True)
    # A partner-sandbox clinic of an EMR vendor (sync owns which vendor): synthetic data only. It
    # never appears to the public, in provincial figures or in open data, and only sandbox EMR
    # clients and synthetic citizens can touch it (docs/vendors.md).
    is_sandbox = models.BooleanField(default=False, db_default=False)

    class Meta:
        ordering = ["name"]
        verbose_name = _("clinic")
        indexes = [models.Index(fields=["latitude", "longitude"], name="clinic_latlon_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(latitude__gte=-90, latitude__lte=90), name="clinic_latitude_range"
            ),
            models.CheckConstraint(
                condition=models.Q(longitude__gte=-180, longitude__lte=180), name="clinic_longitude_range"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    @property
    def uses_emr(self) -> bool:
        return bool(self.emr_product)


class Practitioner(models.Model):
    """A family doctor or nurse practitioner, known by their RAMQ practitioner number."""

    class Kind(models.TextChoices):
        DOCTOR = "doctor", _("Family doctor")
        NURSE_PRACTITIONER = "np", _("Nurse practitioner")

    ramq_number = models.CharField(
        max_length=6, unique=True, validators=[RegexValidator(r"^\d{6}$", _("Six digits."))]
    )
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.DOCTOR)
    # ISO 639-1 codes separated by commas ("fr,en"): a two-letter code cannot match across a comma,
    # so `languages__contains="en"` is exact on every database.
    languages = models.CharField(max_length=50, default="fr")
    feminine_title = models.BooleanField(
        default=False, help_text=_("Addressed with the feminine title (Dre) in French.")
    )

    class Meta:
        ordering = ["last_name", "first_name"]
        verbose_name = _("practitioner")

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        """The name as a patient reads it, in the active language: "Dre" for a woman doctor in
        French (Office québécois de la langue française), "Dr" otherwise; no title for a nurse
        practitioner."""
        if self.kind != self.Kind.DOCTOR:
            return f"{self.first_name} {self.last_name}"
        if self.feminine_title:
            prefix = pgettext("title of a woman doctor, before her name", "Dr")
        else:
            prefix = pgettext("title of a doctor, before his name", "Dr")
        return f"{prefix} {self.first_name} {self.last_name}"

    @property
    def language_codes(self) -> list[str]:
        return [c for c in self.languages.split(",") if c]


class PractitionerRole(models.Model):
    """A practitioner practising at a clinic site (FHIR PractitionerRole); slots belong to a role."""

    practitioner = models.ForeignKey(Practitioner, on_delete=models.PROTECT, related_name="roles")
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="roles")
    is_active = models.BooleanField(default=True)

    class Meta:
        verbose_name = _("practitioner role")
        constraints = [
            models.UniqueConstraint(fields=["practitioner", "clinic"], name="role_unique_practitioner_clinic")
        ]

    def __str__(self) -> str:
        return f"{self.practitioner} @ {self.clinic}"


class ClinicMembership(models.Model):
    """A person's staff role at one clinic: what they may see and do there (invariant 7).

    Roles: a clinic administrator manages the clinic's staff and settings; a receptionist runs the
    agenda and the phone channel; a practitioner reads the agenda (``practitioner`` links the account
    to the doctor it belongs to). Offboarding sets ``is_active`` off and ``deactivated_at``; the row is
    kept so that the audit log's "who" stays resolvable. Access is checked on every request, so a
    deactivated membership stops working at once (``clinics.services.membership_deactivate`` also
    ends the person's sessions).
    """

    class Role(models.TextChoices):
        CLINIC_ADMIN = "clinic_admin", _("Clinic administrator")
        RECEPTIONIST = "receptionist", _("Receptionist")
        PRACTITIONER = "practitioner", _("Practitioner")

    user = models.ForeignKey("citizens.User", on_delete=models.PROTECT, related_name="memberships")
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    practitioner = models.ForeignKey(
        Practitioner, null=True, blank=True, on_delete=models.PROTECT, related_name="memberships"
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("clinic staff membership")
        constraints = [
            models.UniqueConstraint(fields=["user", "clinic"], name="membership_unique_user_clinic"),
            models.CheckConstraint(
                condition=models.Q(role__in=["clinic_admin", "receptionist", "practitioner"]),
                name="membership_role_valid",
            ),
            # Only a practitioner's membership names a practitioner.
            models.CheckConstraint(
                condition=models.Q(role="practitioner") | models.Q(practitioner__isnull=True),
                name="membership_practitioner_only_for_role",
            ),
            models.CheckConstraint(
                condition=models.Q(is_active=True, deactivated_at__isnull=True)
                | models.Q(is_active=False, deactivated_at__isnull=False),
                name="membership_deactivated_at_matches",
            ),
        ]

    def __str__(self) -> str:
        return f"Membership #{self.pk} ({self.role})"


class BoardRole(models.Model):
    """A provincial role, above the clinics: a board administrator (reviews clinic onboarding) or an
    analyst (reads management information). Neither role sees any clinic's citizens."""

    class Role(models.TextChoices):
        BOARD_ADMIN = "board_admin", _("Board administrator")
        ANALYST = "analyst", _("Provincial analyst")

    user = models.ForeignKey("citizens.User", on_delete=models.PROTECT, related_name="board_roles")
    role = models.CharField(max_length=20, choices=Role.choices)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("board role")
        constraints = [
            models.UniqueConstraint(fields=["user", "role"], name="boardrole_unique_user_role"),
            models.CheckConstraint(
                condition=models.Q(role__in=["board_admin", "analyst"]), name="boardrole_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"Board role #{self.pk} ({self.role})"


class StaffAuditEvent(models.Model):
    """One citizen record shown to a staff member (invariant 7): who, which record, when, why.

    Ids only, never personal data, so that anonymizing old records keeps the log verifiable. One row
    per citizen per response (``clinics.audit.audit_staff_read``); each row is a link of a hash
    chain (``clinics.audit_chain``), so a row changed or deleted in SQL is detected. The EMR side
    keeps its own log in ``sync.AuditEvent``: domain apps never import ``sync``.
    """

    user = models.ForeignKey("citizens.User", on_delete=models.PROTECT, related_name="+")
    clinic = models.ForeignKey(Clinic, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=10, default="read")
    resource_type = models.CharField(max_length=40)
    resource_id = models.BigIntegerField()
    purpose = models.CharField(max_length=20)
    at = models.DateTimeField(db_index=True)
    # The hash chain (clinics.audit_chain): written once by chain_append, checked by chain_verify.
    prev_hash = models.CharField(max_length=64, editable=False)
    chain_hash = models.CharField(max_length=64, editable=False)

    class Meta:
        verbose_name = _("staff audit event")
        indexes = [models.Index(fields=["resource_type", "resource_id"], name="staffaudit_resource")]

    def __str__(self) -> str:
        return f"{self.action} {self.resource_type}/{self.resource_id} by user #{self.user_id}"


class AgendaChange(models.Model):
    """One bulk change a staff member made to a practitioner's agenda: who, what, when, and why.

    Written by the booking services in the same transaction as the change (publishing slots from a
    template, blocking a period, changing the offer of free slots). ``note`` is the staff-only
    reason given when blocking a period ("sick leave"): it never reaches citizens or EMRs, so it is
    kept here and not in the outbox payloads that the change feed serves.
    """

    class Kind(models.TextChoices):
        PUBLISH = "publish", _("Slots published from a template")
        BLOCK = "block", _("Period blocked")
        CHANGE = "change", _("Free slots changed")

    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="agenda_changes")
    practitioner = models.ForeignKey(Practitioner, on_delete=models.PROTECT, related_name="+")
    by = models.ForeignKey("citizens.User", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    start = models.DateTimeField()
    end = models.DateTimeField()
    note = models.CharField(max_length=300, blank=True)
    slots_count = models.PositiveIntegerField(default=0)
    appointments_count = models.PositiveIntegerField(default=0)
    at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = _("agenda change")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=["publish", "block", "change"]), name="agendachange_kind_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")), name="agendachange_end_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"Agenda change #{self.pk} ({self.kind})"


class PhoneBookingNote(models.Model):
    """Why a staff member booked a phone caller past the online limit of upcoming appointments.

    Staff bookings are not limited (invariant 3 binds online channels only), but a receptionist who
    books a caller that already holds as many upcoming appointments as the portal allows writes why.
    Staff-only: never sent to the citizen or an EMR, so kept here and not in the outbox.
    """

    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="+")
    appointment = models.OneToOneField(
        "booking.Appointment", on_delete=models.PROTECT, related_name="phone_booking_note"
    )
    by = models.ForeignKey("citizens.User", on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=300)
    at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = _("phone booking note")

    def __str__(self) -> str:
        return f"Phone booking note #{self.pk}"


class RegistrationRequest(models.Model):
    """A clinic's request to join the service, reviewed by a board administrator.

    Pending until a board administrator approves it (the clinic, its practitioners' roles and an
    invitation for its administrator are created in one transaction) or rejects it with a reason.
    The requester is not an account yet: ``admin_email`` receives the decision, in ``language``.
    ``emr_product`` is the product's name as ``Clinic.emr_product`` stores it (empty: no EMR, the
    clinic runs its agenda here); the domain apps never import ``sync``, so no foreign key to it.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Awaiting review")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    name = models.CharField(max_length=200)
    address = models.CharField(max_length=200)
    city = models.CharField(max_length=100)
    postal_code = models.CharField(max_length=7, validators=[postal_code_validator])
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+")
    time_zone = models.CharField(
        max_length=40, choices=QUEBEC_TIME_ZONES, default="America/Toronto", validators=[validate_time_zone]
    )
    phone = models.CharField(max_length=20)
    gmf = models.ForeignKey(Gmf, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    emr_product = models.CharField(max_length=100, blank=True)
    admin_name = models.CharField(max_length=200)
    admin_email = models.EmailField()
    language = models.CharField(max_length=2, default="fr")
    attested = models.BooleanField()
    submitted_at = models.DateTimeField(db_index=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        "citizens.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decision_reason = models.TextField(blank=True)
    clinic = models.OneToOneField(
        Clinic, null=True, blank=True, on_delete=models.PROTECT, related_name="registration_request"
    )

    class Meta:
        ordering = ["submitted_at"]
        verbose_name = _("clinic registration request")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "approved", "rejected"]),
                name="registration_status_valid",
            ),
            models.CheckConstraint(condition=models.Q(attested=True), name="registration_attested"),
            # A decision names who took it and when; a rejection says why; an approval its clinic.
            models.CheckConstraint(
                condition=models.Q(status="pending", decided_at__isnull=True, clinic__isnull=True)
                | models.Q(status="approved", decided_at__isnull=False, clinic__isnull=False)
                | (
                    models.Q(status="rejected", decided_at__isnull=False, clinic__isnull=True)
                    & ~models.Q(decision_reason="")
                ),
                name="registration_decision_consistent",
            ),
        ]

    def __str__(self) -> str:
        return f"Registration request #{self.pk} ({self.status})"


class RegistrationPractitioner(models.Model):
    """One practitioner named in a registration request, by RAMQ practitioner number."""

    request = models.ForeignKey(RegistrationRequest, on_delete=models.CASCADE, related_name="practitioners")
    ramq_number = models.CharField(max_length=6, validators=[RegexValidator(r"^\d{6}$", _("Six digits."))])
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)

    class Meta:
        ordering = ["pk"]
        verbose_name = _("practitioner of a registration request")
        constraints = [
            models.UniqueConstraint(
                fields=["request", "ramq_number"], name="registration_practitioner_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.ramq_number} (request #{self.request_id})"


class StaffInvitation(models.Model):
    """A single-use, expiring invitation to join a clinic's staff, sent by e-mail.

    Only a SHA-256 digest of the token is stored: the link in the e-mail is the credential, and a
    copy of this table cannot be turned into working links. Accepting is a compare-and-set on
    ``accepted_at``, so a link used twice (or by two tabs at once) creates one membership.
    """

    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=20, choices=ClinicMembership.Role.choices)
    token_digest = models.CharField(max_length=64, unique=True)
    language = models.CharField(max_length=2, default="fr")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        "citizens.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    invited_by = models.ForeignKey(
        "citizens.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # A practitioner's account is linked to their doctor when the invitation names one.
    practitioner = models.ForeignKey(
        Practitioner, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Withdrawn by an administrator (or replaced by a new invitation): the link stops working.
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("staff invitation")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(expires_at__gt=models.F("created_at")), name="invitation_expires_after"
            ),
            models.CheckConstraint(
                condition=models.Q(accepted_at__isnull=True, accepted_by__isnull=True)
                | models.Q(accepted_at__isnull=False, accepted_by__isnull=False),
                name="invitation_accepted_by_matches",
            ),
            models.CheckConstraint(
                condition=models.Q(role="practitioner") | models.Q(practitioner__isnull=True),
                name="invitation_practitioner_only_for_role",
            ),
            models.CheckConstraint(
                condition=models.Q(accepted_at__isnull=True) | models.Q(revoked_at__isnull=True),
                name="invitation_not_accepted_and_revoked",
            ),
        ]

    def __str__(self) -> str:
        return f"Staff invitation #{self.pk} ({self.role})"


class PrivacyIncident(models.Model):
    """One entry of the confidentiality-incident register (Law 25, art. 3.5 to 3.8), kept by the board.

    Describes the incident, never the people: no names, card numbers or contact details here, only
    categories and an approximate count. The board records whether there is a risk of serious
    injury (art. 3.7) and its notification decisions; every create and change is audited.
    """

    class Category(models.TextChoices):
        IDENTITY = "identity", _("Identity")
        HEALTH_CARD = "health_card", _("Health card number")
        CONTACT = "contact", _("Contact details")
        APPOINTMENT = "appointment", _("Appointment details")
        HEALTH = "health", _("Health information")
        OTHER = "other", _("Other")

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        CLOSED = "closed", _("Closed")

    occurred_at = models.DateTimeField(_("occurred at"))
    discovered_at = models.DateTimeField(_("discovered at"))
    reported_by_role = models.CharField(
        _("reported by (role)"), max_length=200, help_text=_("A role, not a name.")
    )
    description = models.TextField(_("description"))
    # A JSON list of Category values (the admin's form checks them): portable, so that the demo's
    # SQLite database migrates too; the register is small and never filtered by category in SQL.
    categories = models.JSONField(_("categories of personal information"), default=list)
    people_affected = models.PositiveIntegerField(_("approximate number of people affected"))
    serious_injury_risk = models.BooleanField(_("risk of serious injury"))
    risk_reasoning = models.TextField(_("risk assessment reasoning"))
    cai_notified = models.BooleanField(_("Commission d'accès à l'information notified"), default=False)
    cai_notified_on = models.DateField(_("date the Commission was notified"), null=True, blank=True)
    persons_notified = models.BooleanField(_("persons concerned notified"), default=False)
    persons_notified_on = models.DateField(
        _("date the persons concerned were notified"), null=True, blank=True
    )
    measures = models.TextField(_("measures taken"), blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)
    created_by = models.ForeignKey(
        "citizens.User", on_delete=models.PROTECT, related_name="+", verbose_name=_("created by")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["-discovered_at"]
        verbose_name = _("privacy incident")
        verbose_name_plural = _("privacy incidents")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(discovered_at__gte=models.F("occurred_at")),
                name="privacyincident_discovered_after_occurred",
            ),
            models.CheckConstraint(
                condition=models.Q(cai_notified=True) | models.Q(cai_notified_on__isnull=True),
                name="privacyincident_cai_date_needs_notified",
            ),
            models.CheckConstraint(
                condition=models.Q(persons_notified=True) | models.Q(persons_notified_on__isnull=True),
                name="privacyincident_persons_date_needs_notified",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["open", "closed"]), name="privacyincident_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"Privacy incident #{self.pk} ({self.status})"

    def clean(self) -> None:
        errors: dict[str, Any] = {}
        if self.occurred_at and self.discovered_at and self.discovered_at < self.occurred_at:
            errors["discovered_at"] = _("An incident cannot be discovered before it happened.")
        if self.cai_notified_on and not self.cai_notified:
            errors["cai_notified_on"] = _(
                "A notification date needs “Commission d'accès à l'information notified” checked."
            )
        if self.persons_notified_on and not self.persons_notified:
            errors["persons_notified_on"] = _(
                "A notification date needs “persons concerned notified” checked."
            )
        if errors:
            raise ValidationError(errors)
