"""Law 25 retention (docs/privacy.md): personal data nobody needs any more is removed or made coarse.

Run daily by beat (``booking.tasks.retention_apply``); every step is one bulk statement, safe to run
twice or concurrently, and takes the application clock ``now`` (tests move it).

- Expired holds keep their holder's id on the slot until someone holds it again: cleared once the
  hold is ``RETENTION_EXPIRED_HOLD_HOURS`` past its expiry. A hold is not part of a slot's
  published state (``slot_hold``: no version, no outbox event), and an expired hold blocks nobody,
  so clearing it changes no availability; the filter on the expiry is the compare-and-set: a slot
  held again meanwhile has a later expiry and is left alone.
- Searches without result keep the searcher's postal area (FSA) and radius for
  ``RETENTION_SEARCH_DETAIL_DAYS``; then only the region, reason, path and date remain, enough for
  provincial reporting of unmet demand.
- Expired sessions (a card identified in a browser is a citizen id in the session) are deleted.
- Appointments that started more than ``RETENTION_APPOINTMENT_DAYS`` ago are anonymized
  (``appointments_anonymize``): no citizen, no account that booked it, no idempotency key; their
  reminders lose the provider's message id and a staff phone-booking note its free text. Clinic,
  times, reason, status, channel, cancellation reason and reference stay: provincial reporting
  counts them (``booking.reporting``) and none of it names anyone once the link is gone.
- Waitlist requests that ended more than ``RETENTION_APPOINTMENT_DAYS`` ago, and their offers, lose
  their citizen the same way (region, reason, window and outcome stay for the waitlist figures).

Anonymizing is not a booking change: the version is not bumped and no outbox event is written
(nothing a citizen, a clinic or the EMR feed acts on changes: the rows are long past, far beyond
the feed's retention). ``external_id`` stays: it is the EMR's own identifier of its booking, which
names no one without the clinic's records, and lets the EMR match a late change.

Rate-limit counters and allauth's sign-in attempts live in Redis and expire by themselves (at most
ten minutes). The audit logs hold ids only and are kept: anonymizing never breaks their hash chains.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.sessions.models import Session
from django.db.models import Q, QuerySet

from clinics.models import PhoneBookingNote

from ..models import Appointment, Reminder, SearchMiss, Slot
from ..waitlist.models import WaitlistOffer, WaitlistRequest


@dataclass(frozen=True)
class RetentionReport:
    holds_cleared: int
    searches_coarsened: int
    sessions_deleted: int
    appointments_anonymized: int = 0
    waitlist_requests_anonymized: int = 0


@dataclass(frozen=True)
class Anonymized:
    appointments: int
    reminders: int
    notes: int


def appointments_anonymize(appointments: QuerySet[Appointment]) -> Anonymized:
    """Cut ``appointments`` (a queryset, evaluated as a subquery in each statement) from the person.

    Three bulk statements, each idempotent on its own (it filters on what it clears), so a run
    stopped half-way or two runs at once leave the same result; the appointment step comes last,
    so that a crash never leaves a reminder or a note that the next run cannot find. Only personal
    links change: nothing that reporting counts, nor a slot, nor a version, nor the audit logs.
    """
    ids = appointments.values("pk")
    reminders = Reminder.objects.filter(appointment__in=ids).exclude(provider_id="").update(provider_id="")
    notes = PhoneBookingNote.objects.filter(appointment__in=ids).exclude(reason="").update(reason="")
    changed = (
        Appointment.objects.filter(pk__in=ids)
        .filter(Q(citizen__isnull=False) | Q(booked_by_user__isnull=False) | Q(idempotency_key__isnull=False))
        .update(citizen=None, booked_by_user=None, idempotency_key=None)
    )
    return Anonymized(appointments=changed, reminders=reminders, notes=notes)


def waitlist_anonymize(requests: QuerySet[WaitlistRequest]) -> int:
    """Ended waitlist requests (and their offers) lose their citizen and, for a dependant, the
    account holder who asked: two bulk statements."""
    ids = requests.exclude(status=WaitlistRequest.Status.ACTIVE).values("pk")
    WaitlistOffer.objects.filter(request__in=ids, citizen__isnull=False).exclude(
        status=WaitlistOffer.Status.OFFERED
    ).update(citizen=None)
    return (
        WaitlistRequest.objects.filter(pk__in=ids)
        .filter(Q(citizen__isnull=False) | Q(requested_by__isnull=False))
        .update(citizen=None, requested_by=None)
    )


def retention_apply(*, now: datetime) -> RetentionReport:
    hold_cutoff = now - timedelta(hours=settings.RETENTION_EXPIRED_HOLD_HOURS)
    holds = Slot.objects.filter(hold_expires__lt=hold_cutoff).update(
        holder=None, hold_expires=None, hold_token=""
    )
    search_cutoff = now - timedelta(days=settings.RETENTION_SEARCH_DETAIL_DAYS)
    searches = (
        SearchMiss.objects.filter(created_at__lt=search_cutoff)
        .filter(~Q(fsa="") | Q(radius_km__isnull=False))
        .update(fsa="", radius_km=None)
    )
    sessions, _ = Session.objects.filter(expire_date__lt=now).delete()
    appointment_cutoff = now - timedelta(days=max(1, settings.RETENTION_APPOINTMENT_DAYS))
    anonymized = appointments_anonymize(Appointment.objects.filter(start__lt=appointment_cutoff))
    waitlist = waitlist_anonymize(
        WaitlistRequest.objects.filter(
            Q(ended_at__lt=appointment_cutoff) | Q(expires_at__lt=appointment_cutoff)
        )
    )
    return RetentionReport(
        holds_cleared=holds,
        searches_coarsened=searches,
        sessions_deleted=sessions,
        appointments_anonymized=anonymized.appointments,
        waitlist_requests_anonymized=waitlist,
    )
