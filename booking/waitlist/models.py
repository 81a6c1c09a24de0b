"""Waitlist requests and offers (docs/waitlist.md). Imported by ``booking.models``."""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from ..models import Appointment, Reason, Slot


class WaitlistRequest(models.Model):
    """A citizen waiting for a time: one search path, one reason, one area and a window of days.

    Status: ``active`` (waiting; offered slots in turn) → ``booked`` (an offer was accepted), or
    ``withdrawn`` by the citizen, or ``expired`` once its window has ended. A request is waiting
    only while ``active`` and ``expires_at`` (the end of ``date_to``, Quebec time) is in the future:
    the beat marks ended ones ``expired``, but no query relies on that job.

    The area is the path's scope, fixed when the request is made: the family doctor (``mine``), the
    doctor's GMF (``gmf``), or a circle around a postal-code area (``near``, the FSA's centroid).
    Eligibility is checked again when a slot is offered (an enrolment may have changed).

    ``citizen`` is the patient (the person the appointment will be for); ``requested_by`` the
    account holder who asked for one of their dependants, if anyone: the offers go to the holder's
    channel, the booking is the dependant's, and the limits count per patient.
    """

    class Path(models.TextChoices):
        MINE = "mine", _("With my family doctor")
        GMF = "gmf", _("In my family doctor's GMF")
        NEAR = "near", _("At a clinic near a place I choose")

    class Status(models.TextChoices):
        ACTIVE = "active", _("Waiting")
        BOOKED = "booked", _("Booked through an offer")
        WITHDRAWN = "withdrawn", _("Withdrawn")
        EXPIRED = "expired", _("Ended")

    class Channel(models.TextChoices):
        EMAIL = "email", _("E-mail")
        SMS = "sms", _("Text message")

    class TimeOfDay(models.TextChoices):
        MORNING = "morning", _("Morning")
        AFTERNOON = "afternoon", _("Afternoon")
        EVENING = "evening", _("Evening")

    # Empty once anonymized (booking.services.retention): the waitlist figures stay.
    citizen = models.ForeignKey(
        "citizens.Citizen", null=True, blank=True, on_delete=models.CASCADE, related_name="waitlist_requests"
    )
    # For a dependant: the account holder who asked, whose channel gets the offers and who books.
    # Null when the citizen asked for themself.
    requested_by = models.ForeignKey(
        "citizens.Citizen", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    path = models.CharField(max_length=10, choices=Path.choices)
    reason = models.CharField(max_length=20, choices=Reason.choices)
    practitioner = models.ForeignKey(
        "clinics.Practitioner", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    gmf = models.ForeignKey("clinics.Gmf", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    fsa = models.CharField(max_length=3, blank=True)
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    radius_km = models.PositiveSmallIntegerField(null=True, blank=True)
    region = models.ForeignKey(
        "clinics.Region", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    date_from = models.DateField()
    date_to = models.DateField()
    time_of_day = models.CharField(max_length=10, choices=TimeOfDay.choices, blank=True)
    channel = models.CharField(max_length=5, choices=Channel.choices, default=Channel.EMAIL)
    language = models.CharField(max_length=2, default="fr")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("waitlist request")
        indexes = [
            # The fair order: active requests, first come first offered.
            models.Index(
                fields=["created_at", "id"], name="waitlist_active_order", condition=Q(status="active")
            ),
            models.Index(fields=["citizen", "status"], name="waitlist_citizen_status"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["active", "booked", "withdrawn", "expired"]),
                name="waitlist_status_valid",
            ),
            models.CheckConstraint(condition=Q(channel__in=["email", "sms"]), name="waitlist_channel_valid"),
            models.CheckConstraint(
                condition=~Q(requested_by=models.F("citizen")), name="waitlist_requested_by_other"
            ),
            models.CheckConstraint(
                condition=Q(date_to__gte=models.F("date_from")), name="waitlist_window_valid"
            ),
            models.CheckConstraint(
                condition=(
                    Q(path="mine", practitioner__isnull=False)
                    | Q(path="gmf", gmf__isnull=False)
                    | Q(path="near", latitude__isnull=False, longitude__isnull=False, radius_km__isnull=False)
                ),
                name="waitlist_scope_set",
            ),
        ]

    def __str__(self) -> str:
        return f"Waitlist request #{self.pk} {self.path}/{self.reason} {self.status}"


class WaitlistOffer(models.Model):
    """One slot offered to one waiting citizen, with an exclusive hold until ``expires_at``.

    Status: ``offered`` → ``accepted`` (booked through the link), ``declined`` (the citizen said no),
    ``expired`` (unanswered in time), ``failed`` (the booking was refused at confirmation: the slot
    was withdrawn, the citizen reached their limit…) or ``withdrawn`` (the citizen withdrew the
    request). Every end but ``accepted`` passes the slot on to the next waiting citizen.

    The database keeps the fair rule honest whatever the number of workers: at most one ``offered``
    row per slot and per citizen (partial unique indexes), and one offer of a given slot per
    request. The hold on the slot row (``hold_token``) is the compare-and-set guard that keeps
    everybody else from booking it meanwhile. Only the SHA-256 of the link's token is kept.
    """

    class Status(models.TextChoices):
        OFFERED = "offered", _("Offered")
        ACCEPTED = "accepted", _("Accepted")
        DECLINED = "declined", _("Declined")
        EXPIRED = "expired", _("Expired")
        FAILED = "failed", _("Could not be booked")
        WITHDRAWN = "withdrawn", _("Withdrawn")

    class NotifyState(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Not sent")

    request = models.ForeignKey(WaitlistRequest, on_delete=models.CASCADE, related_name="offers")
    citizen = models.ForeignKey(
        "citizens.Citizen", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    slot = models.ForeignKey(Slot, on_delete=models.PROTECT, related_name="waitlist_offers")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OFFERED)
    token_hash = models.CharField(max_length=64, unique=True)
    hold_token = models.CharField(max_length=32)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    appointment = models.OneToOneField(
        Appointment, null=True, blank=True, on_delete=models.PROTECT, related_name="waitlist_offer"
    )
    channel = models.CharField(max_length=5, blank=True)
    notify_state = models.CharField(max_length=10, choices=NotifyState.choices, default=NotifyState.PENDING)
    last_error = models.CharField(max_length=100, blank=True)

    class Meta:
        verbose_name = _("waitlist offer")
        indexes = [
            models.Index(fields=["expires_at"], name="waitlist_offer_live", condition=Q(status="offered")),
            models.Index(fields=["created_at"], name="waitlist_offer_created"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["slot"], condition=Q(status="offered"), name="waitlist_one_live_offer_per_slot"
            ),
            models.UniqueConstraint(
                fields=["citizen"], condition=Q(status="offered"), name="waitlist_one_live_offer_per_citizen"
            ),
            models.UniqueConstraint(fields=["request", "slot"], name="waitlist_one_offer_per_request_slot"),
            models.CheckConstraint(
                condition=Q(status__in=["offered", "accepted", "declined", "expired", "failed", "withdrawn"]),
                name="waitlist_offer_status_valid",
            ),
            models.CheckConstraint(
                condition=~Q(status="accepted") | Q(appointment__isnull=False),
                name="waitlist_accepted_has_appt",
            ),
        ]

    def __str__(self) -> str:
        return f"Waitlist offer #{self.pk} slot {self.slot_id} {self.status}"
