"""Citizens: accounts, insured persons as known to the service, enrolments with a family doctor."""

from typing import Any, ClassVar

from django.contrib.auth.models import AbstractUser, UserManager
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


class EmailUserManager(UserManager["User"]):
    def _create_user(
        self, username: str | None, email: str | None, password: str | None, **extra_fields: Any
    ) -> "User":
        email = self.normalize_email(email)
        user = self.model(email=email, **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    # Login is by e-mail: these take no username, unlike UserManager's, so the signatures differ.
    def create_user(  # type: ignore[override]
        self, email: str | None = None, password: str | None = None, **extra_fields: Any
    ) -> "User":
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(None, email, password, **extra_fields)

    def create_superuser(  # type: ignore[override]
        self, email: str | None = None, password: str | None = None, **extra_fields: Any
    ) -> "User":
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        return self._create_user(None, email, password, **extra_fields)


class User(AbstractUser):
    """An account: a citizen, clinic staff, an analyst or a board administrator. Login by e-mail."""

    username = None  # type: ignore[assignment]  # drops AbstractUser's field: login is by e-mail
    email = models.EmailField(_("e-mail address"), unique=True)
    preferred_language = models.CharField(
        max_length=2, choices=[("fr", "Français"), ("en", "English")], default="fr"
    )

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []
    objects: ClassVar[EmailUserManager] = EmailUserManager()

    class Meta:
        verbose_name = _("user")


class Citizen(models.Model):
    """An insured person as the service knows them.

    The identity columns (NAM, sequence number, names, birth date, sex) mirror the insured-person
    registry (``citizens.registry``): on the demo and in tests this table *is* the registry; in
    production RAMQ's service answers and this row keeps the last verified copy. Contact and
    language are the citizen's own choices. ``account`` is set once an account holder links the card.
    """

    class Sex(models.TextChoices):
        FEMALE = "F", _("Female")
        MALE = "M", _("Male")
        X = "X", _("X")

    nam = models.CharField(max_length=12, unique=True, validators=[RegexValidator(r"^[A-Z]{4}\d{8}$")])
    card_sequence = models.CharField(max_length=2, validators=[RegexValidator(r"^\d{2}$")])
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    birth_date = models.DateField()
    sex = models.CharField(max_length=1, choices=Sex.choices)
    postal_code = models.CharField(max_length=7, blank=True)
    card_expires = models.DateField(null=True, blank=True)
    preferred_language = models.CharField(
        max_length=2, choices=[("fr", "Français"), ("en", "English")], default="fr"
    )
    email = models.EmailField(blank=True)
    mobile = models.CharField(max_length=20, blank=True)
    account = models.OneToOneField(
        "citizens.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="citizen"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # A synthetic person of an EMR vendor's partner sandbox: books only on sandbox clinics' slots,
    # and nobody else books there online (booking.services._common._check_online_rules).
    is_synthetic = models.BooleanField(default=False, db_default=False)

    class Meta:
        verbose_name = _("citizen")

    def __str__(self) -> str:
        # Never the NAM or the name: this string can reach logs and the admin's history.
        return f"Citizen #{self.pk}"

    @property
    def fsa(self) -> str:
        return self.postal_code[:3] if self.postal_code else ""


class Enrolment(models.Model):
    """A citizen's enrolment (inscription) with a family doctor, and so with that doctor's GMF."""

    citizen = models.ForeignKey(Citizen, on_delete=models.CASCADE, related_name="enrolments")
    practitioner = models.ForeignKey(
        "clinics.Practitioner", on_delete=models.PROTECT, related_name="enrolments"
    )
    gmf = models.ForeignKey("clinics.Gmf", null=True, blank=True, on_delete=models.PROTECT)
    is_active = models.BooleanField(default=True)
    since = models.DateField()

    class Meta:
        verbose_name = _("enrolment")
        constraints = [
            models.UniqueConstraint(
                fields=["citizen"],
                condition=models.Q(is_active=True),
                name="enrolment_one_active_per_citizen",
            )
        ]

    def __str__(self) -> str:
        return f"Enrolment #{self.pk}"


class Dependant(models.Model):
    """A person in an account holder's care: a child, or an adult the holder acts for.

    The holder (``guardian``) verified the dependant's own health-insurance card and attested the
    relationship; from then on they book, move and cancel the dependant's appointments, which are
    the dependant's own (``Appointment.citizen`` is the dependant, so limits and overlaps count per
    person). The link is between two insured persons, not two accounts: whoever proves the
    guardian's identity (an account with the linked card, a card identification, an API token)
    acts for the guardian's dependants. Removing the link ends that; the appointments stay.
    """

    class Relationship(models.TextChoices):
        PARENT = "parent", _("Parent of a minor child")
        GUARDIAN = "guardian", _("Legal guardian (tutor) of a minor")
        MANDATARY = "mandatary", _("Mandatary of an adult (protection mandate or power of attorney)")
        CAREGIVER = "caregiver", _("Caregiver of an adult who agrees to it")

    # Relationships that exist only with a minor (under 18 in Quebec).
    MINOR_ONLY = (Relationship.PARENT, Relationship.GUARDIAN)

    guardian = models.ForeignKey(Citizen, on_delete=models.CASCADE, related_name="dependant_links")
    citizen = models.ForeignKey(Citizen, on_delete=models.CASCADE, related_name="guardian_links")
    relationship = models.CharField(max_length=12, choices=Relationship.choices)
    attested_at = models.DateTimeField()
    added_by = models.ForeignKey(
        "citizens.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("dependant")
        constraints = [
            models.UniqueConstraint(fields=["guardian", "citizen"], name="dependant_unique_per_guardian"),
            models.CheckConstraint(
                condition=~models.Q(guardian=models.F("citizen")), name="dependant_not_self"
            ),
            models.CheckConstraint(
                condition=models.Q(relationship__in=["parent", "guardian", "mandatary", "caregiver"]),
                name="dependant_relationship_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"Dependant #{self.pk}"
