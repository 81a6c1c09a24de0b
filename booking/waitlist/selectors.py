"""Waitlist reads: a citizen's requests, an offer by its link, the waiting count and the fill rate."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Exists, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from citizens.models import Citizen
from citizens.selectors import patient_ids_for

from ..models import Appointment, OutboxEvent, Slot
from .models import WaitlistOffer, WaitlistRequest
from .services import token_hash


def waitlist_requests_for_citizen(*, citizen: Citizen, now: datetime | None = None) -> list[WaitlistRequest]:
    """The citizen's waiting requests and their dependants', oldest first, each with ``live_offer``
    (or None) set; ``request.citizen`` is the patient."""
    now = now or timezone.now()
    requests = list(
        WaitlistRequest.objects.filter(
            citizen_id__in=patient_ids_for(citizen=citizen),
            status=WaitlistRequest.Status.ACTIVE,
            expires_at__gt=now,
        )
        .select_related("practitioner", "gmf", "citizen")
        .order_by("created_at", "id")
    )
    live = {
        offer.request_id: offer
        for offer in WaitlistOffer.objects.filter(
            request__in=requests, status=WaitlistOffer.Status.OFFERED, expires_at__gt=now
        ).select_related("slot__clinic")
    }
    for request in requests:
        request.live_offer = live.get(request.pk)  # type: ignore[attr-defined]
    return requests


def waitlist_offer_for_token(token: str) -> WaitlistOffer | None:
    """The offer a link opens: its token is the credential, looked up by hash."""
    if not token or len(token) > 100:
        return None
    return (
        WaitlistOffer.objects.select_related(
            "slot__clinic", "slot__practitioner", "request__requested_by", "citizen", "appointment"
        )
        .filter(token_hash=token_hash(token))
        .first()
    )


def waitlist_active_count(
    *,
    now: datetime | None = None,
    region_ids: Iterable[str] | None = None,
    reason: str = "",
    path: str = "",
) -> int:
    """Waitlist length: requests waiting now (active, window not ended), for provincial reporting.

    ``region_ids``: the health regions to count (a request's region is its area's: the postal-code
    area of the near-me path, else the citizen's own). No personal data is read or returned.
    """
    now = now or timezone.now()
    qs = WaitlistRequest.objects.filter(status=WaitlistRequest.Status.ACTIVE, expires_at__gt=now)
    if region_ids is not None:
        qs = qs.filter(region_id__in=list(region_ids))
    if reason:
        qs = qs.filter(reason=reason)
    if path:
        qs = qs.filter(path=path)
    return qs.count()


def waitlist_length_at(at: datetime) -> dict[str, int]:
    """People waiting at ``at``, per health region code (provincial reporting's waitlist length): a
    request counts from its creation until it ended (fulfilled, withdrawn) or its window closed.
    Requests with no region (an area outside the FSA table) are not counted; no personal data."""
    rows = (
        WaitlistRequest.objects.filter(created_at__lte=at, expires_at__gt=at, region__isnull=False)
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=at))
        .values_list("region_id")
        # An anonymized request (retention: ended two years ago) counts as one person of its own.
        .annotate(people=Count(Coalesce("citizen_id", -F("id")), distinct=True))
        .order_by()
    )
    return dict(rows)


@dataclass(frozen=True)
class FillRate:
    """Freed slots over a period and what became of them (docs/waitlist.md, "Fill rate").

    ``freed``: distinct slots that an appointment's cancellation returned to free during the period
    (citizen or clinic cancellations, and the release step of reschedules and clinic moves).
    ``offered``: of those, slots offered to a waiting citizen after they were freed.
    ``booked_via_waitlist``: of those, slots booked through an accepted offer.
    ``rebooked_any``: of those, slots booked again on any channel (context for the rate).
    ``fill_rate``: ``booked_via_waitlist / freed``.
    """

    start: datetime
    end: datetime
    freed: int
    offered: int
    booked_via_waitlist: int
    rebooked_any: int
    offers: int
    offers_accepted: int
    offers_declined: int
    offers_expired: int

    @property
    def fill_rate(self) -> float | None:
        return self.booked_via_waitlist / self.freed if self.freed else None

    @property
    def acceptance_rate(self) -> float | None:
        return self.offers_accepted / self.offers if self.offers else None


def waitlist_fill_rate(
    *, start: datetime, end: datetime, clinic_ids: Iterable[int] | None = None
) -> FillRate:
    """Freed slots in ``[start, end)`` and how many the waitlist filled. Two SQL queries."""
    freeing = OutboxEvent.objects.filter(
        kind="appointment.cancelled", payload__slot_freed=True, created_at__gte=start, created_at__lt=end
    )
    offers = WaitlistOffer.objects.filter(created_at__gte=start, created_at__lt=end)
    if clinic_ids is not None:
        ids = list(clinic_ids)
        freeing = freeing.filter(clinic_id__in=ids)
        offers = offers.filter(slot__clinic_id__in=ids)
    first_freed = freeing.filter(slot_id=OuterRef("pk")).order_by("created_at").values("created_at")[:1]
    after = {"slot_id": OuterRef("pk"), "created_at__gte": OuterRef("freed_at")}
    rows = (
        Slot.objects.filter(pk__in=freeing.values("slot_id"))
        .annotate(freed_at=Subquery(first_freed))
        .annotate(
            was_offered=Exists(WaitlistOffer.objects.filter(**after)),
            via_waitlist=Exists(WaitlistOffer.objects.filter(status=WaitlistOffer.Status.ACCEPTED, **after)),
            rebooked=Exists(Appointment.objects.filter(**after)),
        )
        .values_list("was_offered", "via_waitlist", "rebooked")
    )
    # Summed here rather than in SQL: Django cannot aggregate over annotations that an OuterRef
    # reads (freed_at). One row of three booleans per freed slot, streamed.
    freed = offered = via = rebooked = 0
    for was_offered, via_waitlist, was_rebooked in rows.iterator(chunk_size=5000):
        freed += 1
        offered += was_offered
        via += via_waitlist
        rebooked += was_rebooked
    by_status = dict(offers.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    return FillRate(
        start=start,
        end=end,
        freed=freed,
        offered=offered,
        booked_via_waitlist=via,
        rebooked_any=rebooked,
        offers=sum(by_status.values()),
        offers_accepted=by_status.get(WaitlistOffer.Status.ACCEPTED, 0),
        offers_declined=by_status.get(WaitlistOffer.Status.DECLINED, 0),
        offers_expired=by_status.get(WaitlistOffer.Status.EXPIRED, 0),
    )
