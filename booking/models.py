"""Slots, holds, appointments and the outbox: the booking contract of docs/ARCHITECTURE.md.

Availability is never a counter: a slot's own ``status`` and hold columns are the single truth that
every booking path reads and writes with one compare-and-set UPDATE.
"""

import secrets
from collections.abc import Iterable
from datetime import datetime

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Reason(models.TextChoices):
    """Reasons for the visit (motifs de consultation): one code list, French and English labels."""

    URGENT = "urgent", _("Urgent problem (within 24–48 h)")
    SEMI_URGENT = "semi_urgent", _("Semi-urgent problem (within a week)")
    FOLLOW_UP = "follow_up", _("Follow-up")
    PERIODIC = "periodic", _("Periodic or preventive exam")
    PREGNANCY = "pregnancy", _("Pregnancy follow-up")
    CHILD = "child_0_5", _("Child 0–5 follow-up")


# A slot accepts a set of reasons, kept as bits so that the same column filters on PostgreSQL and on
# the SQLite demo. The bit order is part of the schema: append new reasons, never reorder.
REASON_BITS: dict[str, int] = {code: 1 << i for i, code in enumerate(Reason.values)}
ALL_REASONS_MASK = sum(REASON_BITS.values())


def reasons_to_mask(codes: Iterable[str]) -> int:
    return sum(REASON_BITS[c] for c in set(codes))


def mask_to_reasons(mask: int) -> list[str]:
    return [code for code, bit in REASON_BITS.items() if mask & bit]


class Audience(models.TextChoices):
    """Who may book a slot online."""

    OWN_PATIENTS = "own_patients", _("The doctor's own patients")
    GMF_PATIENTS = "gmf_patients", _("Patients of the GMF")
    PUBLIC = "public", _("Everyone")
    NOT_ONLINE = "not_online", _("Not offered online")


class Modality(models.TextChoices):
    IN_PERSON = "in_person", _("In person")
    PHONE = "phone", _("By phone")
    VIDEO = "video", _("By video")


class Slot(models.Model):
    """A bookable time of one practitioner at one clinic.

    Status: ``free`` (may be held and booked), ``booked`` (an appointment occupies it), ``blocked``
    (taken out by the clinic), ``cancelled`` (withdrawn). Only ``free`` slots can be held or booked.

    Hold: ``holder``/``hold_expires``/``hold_token`` live on the slot row, so that one compare-and-set
    decides who may book it. A hold is live while ``hold_expires > now``; an expired hold is simply
    ignored by every query, so it never blocks anyone and no job needs to clear it.

    ``practitioner`` and ``clinic`` repeat the role's columns so that the database can refuse two
    overlapping published slots of one practitioner in two clinics (an exclusion constraint on
    PostgreSQL) and search can filter without joins; a role never changes practitioner or clinic.
    """

    class Status(models.TextChoices):
        FREE = "free", _("Free")
        BOOKED = "booked", _("Booked")
        BLOCKED = "blocked", _("Blocked")
        CANCELLED = "cancelled", _("Withdrawn")

    class Source(models.TextChoices):
        WEB_AGENDA = "web", _("Web agenda")
        EMR = "emr", _("EMR")

    role = models.ForeignKey("clinics.PractitionerRole", on_delete=models.PROTECT, related_name="slots")
    practitioner = models.ForeignKey("clinics.Practitioner", on_delete=models.PROTECT, related_name="+")
    # No index of its own: slot_clinic_start serves every look-up by clinic. A lone clinic_id index
    # misled the planner into reading and sorting each clinic's whole agenda for "soonest near a
    # place" (docs/benchmarks.md, 2026-11-27).
    clinic = models.ForeignKey(
        "clinics.Clinic", on_delete=models.PROTECT, related_name="slots", db_index=False
    )
    start = models.DateTimeField()
    end = models.DateTimeField()
    reasons = models.PositiveIntegerField(
        default=ALL_REASONS_MASK, help_text=_("Bit set of accepted reasons.")
    )
    audience = models.CharField(max_length=20, choices=Audience.choices, default=Audience.PUBLIC)
    modality = models.CharField(max_length=20, choices=Modality.choices, default=Modality.IN_PERSON)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.FREE)
    holder = models.ForeignKey(
        "citizens.Citizen", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    hold_expires = models.DateTimeField(null=True, blank=True)
    hold_token = models.CharField(max_length=32, blank=True)
    source = models.CharField(max_length=5, choices=Source.choices, default=Source.WEB_AGENDA)
    external_id = models.CharField(max_length=200, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("slot")
        indexes = [
            # The three search paths: by practitioner, by clinics (GMF, near me), soonest first.
            models.Index(
                fields=["practitioner", "start"], name="slot_free_pract_start", condition=Q(status="free")
            ),
            models.Index(
                fields=["clinic", "start"], name="slot_free_clinic_start", condition=Q(status="free")
            ),
            # Near me, soonest first: one scan in start order over public free slots; nearest first: the
            # soonest public free slot of each clinic in the radius.
            models.Index(
                fields=["start"], name="slot_free_public_start", condition=Q(status="free", audience="public")
            ),
            models.Index(
                fields=["clinic", "start"],
                name="slot_free_public_clinic_start",
                condition=Q(status="free", audience="public"),
            ),
            models.Index(fields=["clinic", "start"], name="slot_clinic_start"),
            models.Index(fields=["role", "start"], name="slot_role_start"),
            models.Index(fields=["holder"], name="slot_holder", condition=Q(holder__isnull=False)),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=models.F("start")), name="slot_end_after_start"),
            models.CheckConstraint(
                condition=Q(status__in=["free", "booked", "blocked", "cancelled"]), name="slot_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(audience__in=[a.value for a in Audience]), name="slot_audience_valid"
            ),
            models.CheckConstraint(
                condition=Q(reasons__gt=0) & Q(reasons__lte=ALL_REASONS_MASK), name="slot_reasons_valid"
            ),
            models.UniqueConstraint(
                fields=["clinic", "external_id"], condition=~Q(external_id=""), name="slot_unique_external_id"
            ),
        ]

    def __str__(self) -> str:
        return f"Slot #{self.pk} {self.start:%Y-%m-%d %H:%M}Z"

    @property
    def reason_codes(self) -> list[str]:
        return mask_to_reasons(self.reasons)

    def accepts(self, reason: str) -> bool:
        return bool(self.reasons & REASON_BITS.get(reason, 0))

    def local_start(self) -> datetime:
        return self.start.astimezone(self.clinic.tz)

    def local_end(self) -> datetime:
        return self.end.astimezone(self.clinic.tz)


OCCUPYING_STATUSES = ("booked", "arrived", "fulfilled", "noshow")
APPOINTMENT_STATUSES = (
    *OCCUPYING_STATUSES,
    "cancelled_by_citizen",
    "cancelled_by_clinic",
    "entered_in_error",
)


def new_reference() -> str:
    # 10 characters from an alphabet without look-alikes (no 0/O, 1/I/L): read over the phone.
    alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
    return "".join(secrets.choice(alphabet) for _ in range(10))


class Appointment(models.Model):
    """A patient's appointment in a slot.

    Status: ``booked`` → ``arrived`` → ``fulfilled``, or ``booked`` → ``noshow``, or ``booked``/
    ``arrived`` → ``cancelled_by_citizen``/``cancelled_by_clinic``; ``entered_in_error`` for mistakes.
    It *occupies* its slot unless cancelled or entered in error: a partial unique index allows one
    occupying appointment per slot, whatever path books it. ``start``/``end`` repeat the slot's so
    that PostgreSQL can refuse two overlapping occupying appointments of one patient.
    """

    class Status(models.TextChoices):
        BOOKED = "booked", _("Booked")
        ARRIVED = "arrived", _("Arrived")
        FULFILLED = "fulfilled", _("Fulfilled")
        NOSHOW = "noshow", _("No-show")
        CANCELLED_BY_CITIZEN = "cancelled_by_citizen", _("Cancelled by the citizen")
        CANCELLED_BY_CLINIC = "cancelled_by_clinic", _("Cancelled by the clinic")
        ENTERED_IN_ERROR = "entered_in_error", _("Entered in error")

    class Channel(models.TextChoices):
        PORTAL = "portal", _("Web portal")
        CITIZEN_API = "api", _("Citizen API")
        CLINIC_AGENDA = "agenda", _("Clinic agenda")
        EMR = "emr", _("EMR")
        WAITLIST = "waitlist", _("Waitlist offer")

    class CancelReason(models.TextChoices):
        BETTER_TIME = "better_time", _("I found another time")
        FEELING_BETTER = "feeling_better", _("I no longer need it")
        CANNOT_ATTEND = "cannot_attend", _("I cannot attend")
        SEEN_ELSEWHERE = "seen_elsewhere", _("I was seen elsewhere")
        OTHER = "other", _("Other reason")
        RESCHEDULED = "rescheduled", _("Moved to another time")
        # Chosen by clinic staff (append only: the codes are in the EMR change feed).
        PATIENT_REQUEST = "patient_request", _("The patient asked for it (by phone or in person)")
        PRACTITIONER_AWAY = "practitioner_away", _("The practitioner is unavailable")
        CLINIC_CLOSED = "clinic_closed", _("The clinic is closed")

    # What each side may choose when cancelling; "rescheduled" is recorded by a move, never chosen.
    CITIZEN_CANCEL_REASONS = ("better_time", "feeling_better", "cannot_attend", "seen_elsewhere", "other")
    CLINIC_CANCEL_REASONS = ("patient_request", "practitioner_away", "clinic_closed", "other")

    slot = models.ForeignKey(Slot, on_delete=models.PROTECT, related_name="appointments")
    # Empty once anonymized (booking.services.retention, or the citizen closed their account): the
    # row then keeps only what provincial reporting needs (clinic, times, reason, status, channel).
    citizen = models.ForeignKey(
        "citizens.Citizen", null=True, blank=True, on_delete=models.PROTECT, related_name="appointments"
    )
    clinic = models.ForeignKey("clinics.Clinic", on_delete=models.PROTECT, related_name="appointments")
    start = models.DateTimeField()
    end = models.DateTimeField()
    reason = models.CharField(max_length=20, choices=Reason.choices)
    status = models.CharField(max_length=25, choices=Status.choices, default=Status.BOOKED)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    booked_by_user = models.ForeignKey(
        "citizens.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reference = models.CharField(max_length=10, unique=True, default=new_reference)
    idempotency_key = models.CharField(max_length=64, null=True, blank=True, unique=True)
    external_id = models.CharField(max_length=200, blank=True)
    cancel_reason = models.CharField(max_length=20, choices=CancelReason.choices, blank=True)
    rescheduled_from = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="rescheduled_to"
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Not a column, only declared: the "my appointments" page sets it on its upcoming rows for the template.
    cancellable: bool
    # Not a column either: set by the pages when the appointment is a dependant's, to name the patient.
    for_dependant: bool

    class Meta:
        verbose_name = _("appointment")
        indexes = [
            models.Index(fields=["citizen", "start"], name="appt_citizen_start"),
            models.Index(fields=["clinic", "start"], name="appt_clinic_start"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["slot"],
                condition=Q(status__in=OCCUPYING_STATUSES),
                name="appt_one_occupying_per_slot",
            ),
            models.CheckConstraint(condition=Q(status__in=APPOINTMENT_STATUSES), name="appt_status_valid"),
            models.CheckConstraint(condition=Q(end__gt=models.F("start")), name="appt_end_after_start"),
            # An EMR's identifier names one booking per clinic: its retries find the first result.
            models.UniqueConstraint(
                fields=["clinic", "external_id"], condition=~Q(external_id=""), name="appt_unique_external_id"
            ),
        ]

    def __str__(self) -> str:
        return f"Appointment {self.reference}"

    @property
    def is_occupying(self) -> bool:
        return self.status in OCCUPYING_STATUSES

    def local_start(self) -> datetime:
        return self.start.astimezone(self.clinic.tz)


class OutboxEvent(models.Model):
    """Every change to a slot or an appointment, written in the same transaction as the change.

    The notifier and the EMR change feed read it, so nothing is lost when Redis, a worker or an EMR
    is down. ``notify_state`` moves pending → sent (or skipped) for citizen notifications.

    ``feed_seq`` is the event's place in the EMR change feed. It is not given at insert (ids and
    ``created_at`` follow insert order, not commit order, so a reader paging by them could pass an
    event whose transaction had not committed yet and never see it). A single relay
    (``sync.feed.feed_relay``) numbers events only after they committed, one batch at a time, each
    number above every number already given: a reader paging by ``feed_seq`` therefore never has an
    event appear behind its cursor. Unnumbered events are not in the feed yet.
    """

    class NotifyState(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        SKIPPED = "skipped", _("Nothing to send")

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=40)
    slot = models.ForeignKey(Slot, null=True, on_delete=models.PROTECT, related_name="+")
    appointment = models.ForeignKey(Appointment, null=True, on_delete=models.PROTECT, related_name="+")
    clinic = models.ForeignKey("clinics.Clinic", on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=10, blank=True)
    payload = models.JSONField(default=dict)
    notify_state = models.CharField(max_length=10, choices=NotifyState.choices, default=NotifyState.SKIPPED)
    notified_at = models.DateTimeField(null=True, blank=True)
    feed_seq = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("outbox event")
        indexes = [
            models.Index(
                fields=["created_at"], name="outbox_pending_notify", condition=Q(notify_state="pending")
            ),
            # The relay's work list: committed events not numbered yet, in the order it numbers them.
            models.Index(
                fields=["created_at", "id"], name="outbox_feed_unnumbered", condition=Q(feed_seq=None)
            ),
            # A client's feed page: its clinics' events after its cursor.
            models.Index(
                fields=["clinic", "feed_seq"], name="outbox_feed_clinic", condition=Q(feed_seq__isnull=False)
            ),
        ]
        constraints = [
            # One event per place in the feed, whatever a second relay might try (partial: NULLs are
            # the events not numbered yet, and need no index entry).
            models.UniqueConstraint(
                fields=["feed_seq"], name="outbox_feed_seq_unique", condition=Q(feed_seq__isnull=False)
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"


class SearchMiss(models.Model):
    """A search that found nothing: unmet demand for provincial reporting. No personal data."""

    # Indexed: the reporting aggregation reads the misses recorded since its last run.
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    path = models.CharField(max_length=10)
    reason = models.CharField(max_length=20, blank=True)
    fsa = models.CharField(max_length=3, blank=True)
    region = models.ForeignKey("clinics.Region", null=True, blank=True, on_delete=models.PROTECT)
    radius_km = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        verbose_name = _("search without result")

    def __str__(self) -> str:
        return f"{self.path} {self.fsa} {self.created_at:%Y-%m-%d}"


class Reminder(models.Model):
    """One reminder message (one kind, one channel) for one appointment: see docs/reminders.md.

    State: ``pending`` (waiting for ``due_at``) → ``sending`` (claimed by one sender, ``attempts``
    counts the claims) → ``sent``; back to ``pending`` with a later ``due_at`` after a transient
    failure or outside the 8:00–21:00 clinic-time window; ``skipped`` when it cannot or should no
    longer be sent (no address, too late, too many attempts); ``cancelled`` when the appointment is
    no longer booked. A row left in ``sending`` past the timeout (its worker was killed) is claimed
    again and re-sent with the same ``idempotency_key``, which the backend passes to the provider.

    The unique (appointment, kind, channel) constraint makes scheduling idempotent: a second
    scheduler run inserts nothing. ``last_error`` holds an error class or code, never personal data.
    """

    class Kind(models.TextChoices):
        DAY_BEFORE = "day_before", _("The day before")
        THREE_DAYS = "three_days", _("Three days before")

    class Channel(models.TextChoices):
        EMAIL = "email", _("E-mail")
        SMS = "sms", _("Text message")

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        SKIPPED = "skipped", _("Not sent")
        CANCELLED = "cancelled", _("Cancelled")

    appointment = models.ForeignKey(Appointment, on_delete=models.PROTECT, related_name="reminders")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    channel = models.CharField(max_length=5, choices=Channel.choices)
    due_at = models.DateTimeField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    idempotency_key = models.CharField(max_length=80, unique=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    provider_id = models.CharField(max_length=200, blank=True)
    last_error = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("reminder")
        indexes = [
            # The sender's two work lists: due pending rows, and claims abandoned by a killed worker.
            models.Index(fields=["due_at"], name="reminder_pending_due", condition=Q(state="pending")),
            models.Index(
                fields=["claimed_at"], name="reminder_sending_claimed", condition=Q(state="sending")
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["appointment", "kind", "channel"], name="reminder_unique_kind_channel"
            ),
            models.CheckConstraint(
                condition=Q(state__in=["pending", "sending", "sent", "skipped", "cancelled"]),
                name="reminder_state_valid",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["day_before", "three_days"]), name="reminder_kind_valid"
            ),
            models.CheckConstraint(condition=Q(channel__in=["email", "sms"]), name="reminder_channel_valid"),
            models.CheckConstraint(
                condition=~Q(state="sending") | Q(claimed_at__isnull=False), name="reminder_sending_has_claim"
            ),
        ]

    def __str__(self) -> str:
        return f"Reminder #{self.pk} {self.kind}/{self.channel} {self.state}"


class HelpdeskLookup(models.Model):
    """One search by the board's help desk for a citizen's appointment (booking.helpdesk): who, when,
    by what (a confirmation reference or a NAM, never the value itself), why, and which appointments
    it showed (ids). Written whether or not anything was found; the citizens shown are also in
    ``clinics.StaffAuditEvent`` (purpose ``helpdesk``), like every staff read."""

    class By(models.TextChoices):
        REFERENCE = "reference", _("Confirmation reference")
        NAM = "nam", _("Health insurance number")

    class Why(models.TextChoices):
        CITIZEN_CALL = "citizen_call", _("The citizen called the help desk")
        CLINIC_CALL = "clinic_call", _("A clinic asked for help")
        COMPLAINT = "complaint", _("A complaint is being handled")
        INCIDENT = "incident", _("A technical incident is being investigated")

    user = models.ForeignKey("citizens.User", on_delete=models.PROTECT, related_name="+")
    by = models.CharField(max_length=10, choices=By.choices)
    why = models.CharField(max_length=20, choices=Why.choices)
    details = models.CharField(max_length=200)
    appointment_ids = models.JSONField(default=list)
    at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = _("help desk lookup")

    def __str__(self) -> str:
        return f"Help desk lookup #{self.pk} by user #{self.user_id} ({self.by})"


class CitizenDataEvent(models.Model):
    """A citizen's own privacy request (docs/privacy.md): their data downloaded, or their account
    closed. One row per person concerned (the citizen, and each dependant whose data the download
    carried), linked to its own hash chain (``clinics.audit_chain``, chain ``citizen``) like the staff
    and EMR logs. Ids only, and no foreign keys: anonymizing or closing never changes a row."""

    class Action(models.TextChoices):
        VIEW = "view", _("Data shown")
        EXPORT = "export", _("Data downloaded")
        CLOSE = "close", _("Account closed")

    actor_id = models.BigIntegerField(help_text=_("The citizen who asked (their internal id)."))
    user_id = models.BigIntegerField(null=True, blank=True, help_text=_("Their account, if signed in."))
    action = models.CharField(max_length=10, choices=Action.choices)
    resource_id = models.BigIntegerField(help_text=_("The person whose data it was (internal id)."))
    at = models.DateTimeField(db_index=True)
    prev_hash = models.CharField(max_length=64, editable=False)
    chain_hash = models.CharField(max_length=64, editable=False)

    class Meta:
        verbose_name = _("citizen privacy request")

    def __str__(self) -> str:
        return f"{self.action} citizen #{self.resource_id} by citizen #{self.actor_id}"


# The waitlist's (docs/waitlist.md) and provincial reporting's (docs/metrics.md) models live in
# their own modules; imported here so that Django registers them with the booking app and
# ``booking.models`` names every booking model.
from .reporting.models import (  # noqa: E402,F401
    ClinicActivity,
    DemandWeek,
    ReportAccess,
    ReportingWatermark,
    WeekStat,
)
from .waitlist.models import WaitlistOffer, WaitlistRequest  # noqa: E402, F401
