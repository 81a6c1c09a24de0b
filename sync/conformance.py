"""The conformance kit (skeleton): named scenarios, each with a result and its evidence, read from
what the vendor's sandbox client actually did (docs/vendors.md).

The evidence is what the platform already records: the EMR audit log (``AuditEvent``: every
appointment and patient sent to the client, by action), agenda snapshots, the outbox events the
client caused in its sandbox clinics (channel ``emr``), and its webhook subscriptions. Ids and
counts only, never a person's data.

The requests of the sandbox client, refused ones included, are in ``SandboxRequest``
(``sync.sandbox_requests``): method, interaction, status, OperationOutcome code, identifiers,
feed cursors. A scenario not automated yet (webhook signatures) is ``manual``: the board checks it.
"""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from booking.models import OutboxEvent, Slot

from .models import AgendaSnapshot, AuditEvent, EmrClient, EmrVendor, SandboxRequest, WebhookSubscription

EVIDENCE_ROWS = 5  # the most recent few are shown; the count says how many there were
MAX_BLIND_RETRIES = 3  # the same refused request sent more often than this, in a row, fails
OUTCOME_CODES_NEEDED = 3  # distinct OperationOutcome issue codes of 4xx answers the client received
DESK_CONFLICT_WINDOW = dt.timedelta(minutes=30)  # after a 409 on a desk booking, to act on it

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
    """``PUT Slot?identifier=…`` that changed an existing slot (200), and its ``slot.updated`` events."""
    rows = list(
        SandboxRequest.objects.filter(
            emr_client=ctx.client, at__gte=ctx.since, interaction="conditional-update", status=200
        ).order_by("-at", "-pk")[:EVIDENCE_ROWS]
    )
    if not rows:
        return []
    return [_line(r) for r in rows] + _emr_events(ctx, "slot.updated")


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


def _requests(ctx: Context) -> list[SandboxRequest]:
    return list(SandboxRequest.objects.filter(emr_client=ctx.client, at__gte=ctx.since).order_by("at", "pk"))


def _line(r: SandboxRequest) -> str:
    what = f"{r.resource_type}/{r.resource_id}" if r.resource_id else r.resource_type
    extra = "".join(
        [
            " If-Match" if r.if_match else "",
            f" identifier {r.identifier}" if r.identifier else "",
            f" {r.outcome_code}" if r.outcome_code else "",
        ]
    )
    return f"{r.at:%Y-%m-%d %H:%M:%S}Z {r.method} {what} ({r.interaction}) → {r.status}{extra}"


def _idempotent_retry(ctx: Context) -> list[str]:
    """A desk booking (``POST Appointment``) sent again with the same identifier: every answer 2xx,
    one resource, the repeat answered 200 (not a second booking)."""
    seen: dict[str, list[SandboxRequest]] = {}
    for r in _requests(ctx):
        desk = r.method == "POST" and r.resource_type == "Appointment" and r.interaction == "create"
        if desk and r.identifier and 200 <= r.status < 300 and r.resource_id:
            seen.setdefault(r.identifier, []).append(r)
    for rows in seen.values():
        if len(rows) >= 2 and len({r.resource_id for r in rows}) == 1 and rows[-1].status == 200:
            return [f"{len(rows)} × the same write, one resource"] + [_line(r) for r in rows[:EVIDENCE_ROWS]]
    return []


def _version_conflict(ctx: Context) -> list[str]:
    """A PUT with If-Match answered 412, then a read of that resource, then a 2xx PUT of it."""
    rows = _requests(ctx)
    for i, refused in enumerate(rows):
        if not (
            refused.method == "PUT" and refused.if_match and refused.status == 412 and refused.resource_id
        ):
            continue
        same = [r for r in rows[i + 1 :] if r.resource_id == refused.resource_id]
        for j, read in enumerate(same):
            if read.method == "GET" and read.status == 200:
                done = next((r for r in same[j + 1 :] if r.method == "PUT" and 200 <= r.status < 300), None)
                if done is not None:
                    return [_line(refused), _line(read), _line(done)]
    return []


def _desk_booking_409(ctx: Context) -> list[str]:
    """A desk booking answered 409 (slot taken on the portal), then within the window a search for
    free slots and a booking made elsewhere (2xx POST Appointment) or the conflict resolved ($resolve)."""
    rows = _requests(ctx)
    for i, refused in enumerate(rows):
        if not (
            refused.method == "POST" and refused.resource_type == "Appointment" and refused.status == 409
        ):
            continue
        after = [r for r in rows[i + 1 :] if r.at <= refused.at + DESK_CONFLICT_WINDOW]
        looked = next(
            (r for r in after if r.resource_type == "Slot" and r.interaction == "search" and r.status == 200),
            None,
        )
        acted = next(
            (
                r
                for r in after
                if r.status < 300
                and (
                    (r.method == "POST" and r.resource_type == "Appointment" and r.interaction == "create")
                    or r.interaction == "$resolve"
                )
            ),
            None,
        )
        if looked is not None and acted is not None:
            return [_line(refused), _line(looked), _line(acted)]
    return []


def _feed_no_gaps(ctx: Context) -> list[str]:
    """The feed followed from a head: every page asked for the cursor the previous page answered;
    a head (no cursor) only first or after a 410; at least one page carried entries."""
    pages = [r for r in _requests(ctx) if r.interaction == "feed" and r.status in (200, 410)]
    chain_next: int | None = None
    followed = with_entries = 0
    for r in pages:
        if r.status == 410:
            chain_next = None  # expired: the client must take a fresh head
            continue
        if r.cursor is None:
            if chain_next is not None:
                return []  # a new head mid-chain: what happened in between was skipped
            chain_next = r.next_cursor  # a head (the start, or a resync after 410)
            continue
        if chain_next is None or r.cursor != chain_next:
            return []  # a cursor the server did not just give: events may have been skipped
        followed += 1
        with_entries += 1 if r.entries else 0
        chain_next = r.next_cursor
    if not followed or not with_entries:
        return []
    return [f"{followed} feed page(s) followed without a gap, {with_entries} with entries"] + [
        f"{r.at:%Y-%m-%d %H:%M:%S}Z $feed cursor {r.cursor} → {r.next_cursor} ({r.entries} entries)"
        for r in pages[-EVIDENCE_ROWS:]
        if r.status == 200
    ]


def _webhook_signature(ctx: Context) -> list[str]:
    """The platform's mis-signed probe (``webhooks.webhook_signature_probe``) answered with an HTTP
    refusal (4xx/5xx), and a real, well-signed delivery answered 2xx."""
    rows = _requests(ctx)
    refused = next((r for r in rows if r.interaction == "webhook-probe" and r.status >= 400), None)
    accepted = next((r for r in rows if r.interaction == "webhook" and 200 <= r.status < 300), None)
    if refused is None or accepted is None:
        return []
    return [_line(refused) + " (mis-signed probe)", _line(accepted)]


def _operation_outcomes(ctx: Context) -> list[str]:
    """4xx answers of at least OUTCOME_CODES_NEEDED distinct issue codes received, and never the same
    refused request sent more than MAX_BLIND_RETRIES times in a row."""
    rows = _requests(ctx)
    codes: dict[str, int] = {}
    streak: tuple[object, ...] | None = None
    repeats = 0
    for r in rows:
        key = (r.method, r.resource_type, r.resource_id, r.identifier, r.interaction, r.status)
        if 400 <= r.status < 500 and r.status != 429:
            codes[r.outcome_code or str(r.status)] = codes.get(r.outcome_code or str(r.status), 0) + 1
            repeats = repeats + 1 if key == streak else 1
            streak = key
            if repeats > MAX_BLIND_RETRIES:
                return []  # a 4xx retried blindly
        else:
            streak, repeats = None, 0
    if len(codes) < OUTCOME_CODES_NEEDED:
        return []
    return [", ".join(f"{code} × {n}" for code, n in sorted(codes.items()))]


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("publish-agenda", _("Publish an agenda (Slot create)"), True, _publish_agenda),
    Scenario("conditional-update", _("Change a slot by conditional update"), True, _conditional_update),
    Scenario("snapshot", _("Reconcile an agenda snapshot"), True, _snapshot),
    Scenario("book", _("Book an appointment from the EMR"), True, _book),
    Scenario("feed", _("Consume the change feed"), True, _feed),
    Scenario("webhook", _("Receive webhooks (deliveries acknowledged)"), False, _webhook),
    Scenario("patient-search", _("Look a patient up by health insurance number"), False, _patient_search),
    Scenario("idempotent-retry", _("Retry a write idempotently"), True, _idempotent_retry),
    Scenario("version-conflict", _("Handle a version conflict (412)"), True, _version_conflict),
    Scenario(
        "desk-booking-409",
        _("Handle a desk booking on a slot taken on the portal (409)"),
        True,
        _desk_booking_409,
    ),
    Scenario(
        "feed-no-gaps", _("Follow the feed without gaps, and resynchronize after 410"), True, _feed_no_gaps
    ),
    Scenario(
        "webhook-signature", _("Verify webhook signatures (refuse a bad one)"), True, _webhook_signature
    ),
    Scenario("operation-outcomes", _("Handle each OperationOutcome"), True, _operation_outcomes),
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
