"""The clinic's side of agenda conflicts: what its staff see, and how they resolve one.

A ``SyncConflict`` is a booked slot that the clinic's EMR dropped or moved in an agenda snapshot
(``sync.snapshots``): the booking was kept and the slot left as it was. Staff choose, once:

* ``keep``: the appointment stands as it is; the clinic puts it back in its EMR (until it does, the
  EMR's next snapshot records the disagreement again, as a new conflict);
* ``move``: the citizen is moved to another free slot of the clinic with booking's
  ``appointment_move_by_clinic`` (all or nothing; the citizen gets the new time by e-mail, with a
  link to cancel it if it does not suit them);
* ``cancel``: booking's ``appointment_cancel`` by the clinic (the citizen gets the clinic's
  cancellation notice in their language, with the link to book another time).

After a move or a cancellation the old slot is freed by booking; it then takes the EMR's view of it
(the last applied snapshot: updated to the times the EMR gave it, or withdrawn when the EMR dropped
it), on the EMR channel, so that nobody can book a time the practitioner no longer offers and the
feed does not echo back what the EMR said itself. The appointment changes reach the EMR through the
change feed as every clinic change does. All of it happens in one transaction with the conflict's
row locked: two people resolving the same conflict at once get one resolution and one refusal.
"""

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from booking import errors as booking_errors
from booking import services as booking_services
from booking.models import OCCUPYING_STATUSES, Appointment, Slot
from citizens.models import User
from clinics.models import Clinic, StaffAuditEvent

from .audit import audit_record
from .models import AgendaSnapshot, AuditEvent, EmrClient, EmrClinicGrant, SyncConflict

logger = logging.getLogger(__name__)


class ConflictAlreadyResolved(booking_errors.ApplicationError):
    code = "conflict_resolved"
    status = 409
    message = _("This conflict was already resolved by someone else; see its resolution below.")


class ConflictNotMovable(booking_errors.ApplicationError):
    code = "conflict_no_appointment"
    status = 409
    message = _("This appointment can no longer be moved or cancelled; keep it to close the conflict.")


# --- reads ---------------------------------------------------------------------------------------


def conflicts_open_count(*, clinic_id: int) -> int:
    return SyncConflict.objects.filter(clinic_id=clinic_id, status=SyncConflict.Status.OPEN).count()


def _with_people(qs: QuerySet[SyncConflict]) -> QuerySet[SyncConflict]:
    return qs.select_related(
        "slot__practitioner",
        "appointment__citizen",
        "moved_to",
        "resolved_by",
        "resolved_by_client__product",
        "snapshot",
    )


def conflict_list_for_clinic(
    *, clinic: Clinic, resolved_limit: int = 20
) -> tuple[list[SyncConflict], list[SyncConflict]]:
    """The clinic's open conflicts (soonest appointment first) and its latest resolved ones."""
    base = _with_people(SyncConflict.objects.filter(clinic=clinic))
    open_rows = list(base.filter(status=SyncConflict.Status.OPEN).order_by("slot__start", "pk"))
    resolved = list(
        base.filter(status=SyncConflict.Status.RESOLVED).order_by("-resolved_at", "-pk")[:resolved_limit]
    )
    return open_rows, resolved


def conflict_get_for_clinic(*, clinic: Clinic, conflict_id: int) -> SyncConflict:
    """A conflict of this clinic, or 404: staff never reach another clinic's conflicts."""
    row = _with_people(SyncConflict.objects.filter(clinic=clinic, pk=conflict_id)).first()
    if row is None:
        raise Http404
    return row


def citizen_ids_shown(conflicts: list[SyncConflict]) -> list[int]:
    return [
        c.appointment.citizen_id
        for c in conflicts
        if c.appointment is not None and c.appointment.citizen_id is not None
    ]


@dataclass(frozen=True)
class EmrHealth:
    """The "EMR health" panel: is the clinic's EMR talking to us, and is anything waiting."""

    uses_emr: bool
    product: str
    clients: int  # active API clients of the product allowed for this clinic
    last_snapshot: AgendaSnapshot | None
    last_success_at: dt.datetime | None  # the last API call of those clients answered with a 2xx
    open_conflicts: int


def emr_health_for_clinic(*, clinic: Clinic) -> EmrHealth:
    product_ids = EmrClinicGrant.objects.filter(
        clinic=clinic, revoked_at__isnull=True, product__name=clinic.emr_product
    ).values("product_id")
    clients = (
        EmrClient.objects.filter(product_id__in=product_ids, is_active=True) if clinic.uses_emr else None
    )
    last_snapshot = (
        AgendaSnapshot.objects.filter(role__clinic=clinic)
        .select_related("role__practitioner")
        .order_by("-received_at", "-pk")
        .first()
    )
    return EmrHealth(
        uses_emr=clinic.uses_emr,
        product=clinic.emr_product,
        clients=clients.count() if clients is not None else 0,
        last_snapshot=last_snapshot,
        last_success_at=clients.aggregate(at=Max("last_success_at"))["at"] if clients is not None else None,
        open_conflicts=conflicts_open_count(clinic_id=clinic.pk),
    )


def emr_view_of_slot(slot: Slot) -> dict[str, Any] | None:
    """What the EMR's last applied snapshot says of this slot: its entry (times, codes), or ``None``
    when that snapshot covered the slot's time and did not list it (the EMR dropped it). ``{}``
    when no applied snapshot covered it (we know nothing better than what we have)."""
    snapshots = AgendaSnapshot.objects.filter(role_id=slot.role_id, status=AgendaSnapshot.Status.DONE)
    latest = (
        (
            snapshots.filter(window_start__lte=slot.start, window_end__gt=slot.start)
            | snapshots.filter(entries__contains=[{"identifier": slot.external_id}])
        )
        .order_by("-generation")
        .first()
    )
    if latest is None or not slot.external_id:
        return {}
    return next((e for e in latest.entries if e["identifier"] == slot.external_id), None)


# --- desk bookings refused ----------------------------------------------------------------------


def desk_booking_conflict(*, clinic_id: int, slot_id: int, emr_identifier: str) -> SyncConflict | None:
    """Record that an EMR's desk booking (``emr_identifier``, its appointment identifier) was refused
    because the slot is already booked here: the booking here stands (the first committed wins) and
    the clinic must rebook its desk patient. One open conflict per slot and kind, so a retried desk
    booking records nothing new and gets the same conflict. ``None`` when no appointment occupies
    the slot (a hold, a block: a plain refusal, nothing to resolve). Ids and times only."""
    with transaction.atomic():
        slot = Slot.objects.filter(pk=slot_id, clinic_id=clinic_id).first()
        appointment = (
            Appointment.objects.filter(slot_id=slot_id, status__in=OCCUPYING_STATUSES).order_by("-pk").first()
        )
        if slot is None or appointment is None:
            return None
        kind = SyncConflict.Kind.DESK_BOOKING_REFUSED
        existing = SyncConflict.objects.filter(slot=slot, kind=kind, status=SyncConflict.Status.OPEN).first()
        if existing is not None:
            return existing
        try:
            with transaction.atomic():
                return SyncConflict.objects.create(
                    clinic_id=clinic_id,
                    slot=slot,
                    appointment=appointment,
                    kind=kind,
                    detail={
                        "slot_id": slot.pk,
                        "identifier": slot.external_id,
                        "appointment_id": appointment.pk,
                        "emr_identifier": emr_identifier,
                        "store": {"start": slot.start.isoformat(), "end": slot.end.isoformat()},
                    },
                )
        except IntegrityError:  # the same desk booking retried at the same moment: one conflict
            return SyncConflict.objects.filter(slot=slot, kind=kind, status=SyncConflict.Status.OPEN).first()


# --- the resolution --------------------------------------------------------------------------------


def conflict_resolve(
    *,
    clinic: Clinic,
    conflict_id: int,
    resolution: str,
    by: User | None,
    new_slot_id: int | None = None,
    now: dt.datetime | None = None,
    emr_client: EmrClient | None = None,
) -> SyncConflict:
    """Resolve one open conflict of ``clinic``: keep, move (to ``new_slot_id``) or cancel.

    One transaction: the booking change, the old slot's settlement, the conflict's resolution (who,
    when, which) and an audit row. Any refusal (slot taken meanwhile, appointment already past or
    cancelled, conflict already resolved) rolls all of it back and raises an ``ApplicationError``.
    A member of the staff (``by``) or the clinic's EMR through the FHIR API (``emr_client``, then
    ``by`` is None: the audit row goes to the EMR chain, and a cancellation is on the EMR channel).
    """
    if (by is None) == (emr_client is None):
        raise ValueError("A conflict is resolved by a member of the staff or by an EMR client.")
    now = now or timezone.now()
    if resolution not in SyncConflict.Resolution.values:
        raise booking_errors.ApplicationError(_("Choose keep, move or cancel."))
    if resolution == SyncConflict.Resolution.MOVE and not new_slot_id:
        raise booking_errors.ApplicationError(_("Choose the new time."))
    with transaction.atomic():
        conflict = SyncConflict.objects.select_for_update().filter(clinic=clinic, pk=conflict_id).first()
        if conflict is None:
            raise Http404
        if conflict.status != SyncConflict.Status.OPEN:
            raise ConflictAlreadyResolved
        appointment = (
            Appointment.objects.select_related("citizen").filter(pk=conflict.appointment_id).first()
            if conflict.appointment_id
            else None
        )
        moved_to = None
        if resolution != SyncConflict.Resolution.KEEP:
            if appointment is None or appointment.status != Appointment.Status.BOOKED:
                raise ConflictNotMovable
            if resolution == SyncConflict.Resolution.MOVE:
                assert new_slot_id is not None
                moved_to = booking_services.appointment_move_by_clinic(
                    appointment=appointment, new_slot_id=new_slot_id, by=by, now=now
                )
            else:
                booking_services.appointment_cancel(
                    appointment=appointment,
                    reason=Appointment.CancelReason.OTHER,
                    by_clinic=True,
                    channel=Appointment.Channel.EMR if emr_client is not None else "clinic",
                    now=now,
                )
            if conflict.kind != SyncConflict.Kind.DESK_BOOKING_REFUSED:
                _settle_freed_slot(conflict.slot_id, now=now)
            # A refused desk booking: the slot stays free, for the EMR to send its booking again.
        changed = SyncConflict.objects.filter(pk=conflict.pk, status=SyncConflict.Status.OPEN).update(
            status=SyncConflict.Status.RESOLVED,
            resolution=resolution,
            resolved_by=by,
            resolved_by_client=emr_client,
            resolved_at=now,
            moved_to=moved_to,
        )
        assert changed == 1  # the row is locked above
        if appointment is not None and emr_client is not None:
            audit_record(
                emr_client=emr_client,
                action=AuditEvent.Action.UPDATE,
                resource_type="Appointment",
                ids=[appointment.pk],
            )
        elif appointment is not None and by is not None:
            StaffAuditEvent.objects.create(
                user=by,
                clinic=clinic,
                action="resolve",
                resource_type="Appointment",
                resource_id=appointment.pk,
                purpose=f"emr-conflict-{resolution}",
                at=now,
            )
        conflict.refresh_from_db()
    logger.info(
        "emr conflict resolved",
        extra={
            "conflict_id": conflict.pk,
            "resolution": resolution,
            "user_id": by.pk if by is not None else None,
            "emr_client_id": emr_client.pk if emr_client is not None else None,
        },
    )
    return conflict


def _settle_freed_slot(slot_id: int, *, now: dt.datetime) -> None:
    """The slot the appointment left takes the EMR's view of it (see the module docstring)."""
    slot = Slot.objects.get(pk=slot_id)
    if slot.status != Slot.Status.FREE:
        return
    entry = emr_view_of_slot(slot)
    if entry == {}:
        return
    if entry is not None:
        try:
            booking_services.slot_update(
                slot_id=slot.pk,
                expected_version=None,
                start=dt.datetime.fromisoformat(entry["start"]),
                end=dt.datetime.fromisoformat(entry["end"]),
                reasons=entry["reasons"],
                audience=entry["audience"],
                modality=entry["modality"],
                channel=Slot.Source.EMR,
                now=now,
            )
            return
        except booking_errors.ApplicationError:
            pass  # it would overlap another slot now: withdrawn below; the EMR's next snapshot says more
    booking_services.slot_withdraw(slot_id=slot.pk, channel=Slot.Source.EMR, now=now)


__all__ = [
    "ConflictAlreadyResolved",
    "ConflictNotMovable",
    "EmrHealth",
    "conflict_get_for_clinic",
    "conflict_list_for_clinic",
    "conflict_resolve",
    "conflicts_open_count",
    "desk_booking_conflict",
    "emr_health_for_clinic",
    "emr_view_of_slot",
]
