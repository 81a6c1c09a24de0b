"""The conformance kit (skeleton): named scenarios, each with a result and its evidence, read from
what the vendor's sandbox client actually did (docs/vendors.md).

The evidence is what the platform already records: the EMR audit log (``AuditEvent``: every
appointment and patient sent to the client, by action), agenda snapshots, the outbox events the
client caused in its sandbox clinics (channel ``emr``), and its webhook subscriptions. Ids and
counts only, never a person's data.

A scenario whose check needs a record of the client's rejected requests (412, 409, each
OperationOutcome) or platform-triggered events watched over a time window is listed as ``manual``
until those records exist: the board checks it by hand.
"""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from booking.models import OutboxEvent, Slot

from .models import AgendaSnapshot, AuditEvent, EmrClient, EmrVendor, WebhookSubscription

EVIDENCE_ROWS = 5  # the most recent few are shown; the count says how many there were

PASSED = "passed"
NOT_SEEN = "not_seen"
MANUAL = "manual"


@dataclass(frozen=True)
class Context:
    client: EmrClient
    clinic_ids: set[int]
    since: dt.datetime


@dataclass(frozen=True)
class Result:
    code: str
    title: str
    mandatory: bool
    status: str
    evidence: list[str]

    def as_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "status": self.status,
            "mandatory": self.mandatory,
            "evidence": self.evidence,
        }


Check = Callable[[Context], list[str]]  # the evidence lines; none means not seen


@dataclass(frozen=True)
class Scenario:
    code: str
    title: Promise
    mandatory: bool
    check: Check | None  # None: not automated yet (manual)


def _audit(ctx: Context, *, action: str, resource_type: str) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(
        emr_client=ctx.client, action=action, resource_type=resource_type, at__gte=ctx.since
    ).order_by("-at")


def _audit_lines(rows: QuerySet[AuditEvent], label: str) -> list[str]:
    total = rows.count()
    if not total:
        return []
    return [f"{total} × {label}"] + [
        f"{r.at:%Y-%m-%d %H:%M:%S}Z {r.action} {r.resource_type}/{r.resource_id}"
        for r in rows[:EVIDENCE_ROWS]
    ]


def _emr_events(ctx: Context, kind: str) -> list[str]:
    rows = OutboxEvent.objects.filter(
        clinic_id__in=ctx.clinic_ids, channel=Slot.Source.EMR, kind=kind, created_at__gte=ctx.since
    ).order_by("-created_at")
    total = rows.count()
    if not total:
        return []
    return [f"{total} × {kind}"] + [
        f"{e.created_at:%Y-%m-%d %H:%M:%S}Z {e.kind} Slot/{e.slot_id}" for e in rows[:EVIDENCE_ROWS]
    ]


def _publish_agenda(ctx: Context) -> list[str]:
    return _emr_events(ctx, "slot.created")


def _conditional_update(ctx: Context) -> list[str]:
    return _emr_events(ctx, "slot.updated")


def _snapshot(ctx: Context) -> list[str]:
    rows = AgendaSnapshot.objects.filter(
        emr_client=ctx.client, status=AgendaSnapshot.Status.DONE, received_at__gte=ctx.since
    ).order_by("-received_at")
    return [
        f"{s.received_at:%Y-%m-%d %H:%M:%S}Z snapshot #{s.pk} Schedule/{s.role_id} "
        f"generation {s.generation}: " + ", ".join(f"{k} {v}" for k, v in sorted(s.counts.items()))
        for s in rows[:EVIDENCE_ROWS]
    ]


def _book(ctx: Context) -> list[str]:
    return _audit_lines(
        _audit(ctx, action=AuditEvent.Action.CREATE, resource_type="Appointment"), "create Appointment"
    )


def _feed(ctx: Context) -> list[str]:
    return _audit_lines(
        _audit(ctx, action=AuditEvent.Action.FEED, resource_type="Appointment"), "feed Appointment"
    )


def _webhook(ctx: Context) -> list[str]:
    rows = WebhookSubscription.objects.filter(emr_client=ctx.client, last_delivered_seq__gt=0).order_by("pk")
    return [
        f"Subscription/{w.pk} ({w.status}): acknowledged up to event {w.last_delivered_seq}"
        + (f" at {w.last_delivered_at:%Y-%m-%d %H:%M:%S}Z" if w.last_delivered_at else "")
        for w in rows[:EVIDENCE_ROWS]
    ]


def _patient_search(ctx: Context) -> list[str]:
    return _audit_lines(
        _audit(ctx, action=AuditEvent.Action.SEARCH, resource_type="Patient"), "search Patient"
    )


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("publish-agenda", _("Publish an agenda (Slot create)"), True, _publish_agenda),
    Scenario("conditional-update", _("Change a slot by conditional update"), True, _conditional_update),
    Scenario("snapshot", _("Reconcile an agenda snapshot"), True, _snapshot),
    Scenario("book", _("Book an appointment from the EMR"), True, _book),
    Scenario("feed", _("Consume the change feed"), True, _feed),
    Scenario("webhook", _("Receive webhooks (deliveries acknowledged)"), False, _webhook),
    Scenario("patient-search", _("Look a patient up by health insurance number"), False, _patient_search),
    Scenario("idempotent-retry", _("Retry a write idempotently"), True, None),
    Scenario("version-conflict", _("Handle a version conflict (412)"), True, None),
    Scenario("desk-booking-409", _("Handle a desk booking on a slot taken on the portal (409)"), True, None),
    Scenario("feed-no-gaps", _("Follow the feed without gaps, and resynchronize after 410"), True, None),
    Scenario("webhook-signature", _("Verify webhook signatures (refuse a bad one)"), True, None),
    Scenario("operation-outcomes", _("Handle each OperationOutcome"), True, None),
)


def conformance_report(
    *, vendor: EmrVendor, since: dt.datetime | None = None, now: dt.datetime | None = None
) -> list[Result]:
    """A result per scenario for the vendor's sandbox client, from ``since`` (default: ever)."""
    from .selectors import clinic_ids_for_emr_client

    client = vendor.sandbox_client
    if client is None:
        return []
    ctx = Context(
        client=client,
        clinic_ids=clinic_ids_for_emr_client(client),
        since=since or dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
    )
    results = []
    for scenario in SCENARIOS:
        if scenario.check is None:
            status, evidence = MANUAL, []
        else:
            evidence = scenario.check(ctx)
            status = PASSED if evidence else NOT_SEEN
        results.append(Result(scenario.code, str(scenario.title), scenario.mandatory, status, evidence))
    return results


def conformance_evidence(*, vendor: EmrVendor, now: dt.datetime | None = None) -> dict[str, object]:
    """The report as stored with a certification request (``EmrProductVersion.evidence``)."""
    now = now or timezone.now()
    return {
        "at": now.isoformat(),
        "results": [r.as_json() for r in conformance_report(vendor=vendor, now=now)],
    }


def stored_results(evidence: dict[str, object]) -> list[Result]:
    """The results kept with a certification request, titled in the reader's language."""
    by_code = {s.code: s for s in SCENARIOS}
    rows = evidence.get("results") if isinstance(evidence, dict) else None
    results = []
    for row in rows if isinstance(rows, list) else []:
        scenario = by_code.get(str(row.get("code")))
        title = str(scenario.title) if scenario else str(row.get("code"))
        results.append(
            Result(
                str(row.get("code")),
                title,
                bool(row.get("mandatory")),
                str(row.get("status")),
                [str(line) for line in row.get("evidence", [])],
            )
        )
    return results
