"""The history Bundle of a feed page: one builder for ``$feed``, ``Appointment/_history`` and the
webhooks, so that a change reads the same whichever way it reaches the EMR.

Entries are in feed order (oldest first), each with the resource as it is now; an event whose
appointment or slot is no longer in the client's clinics (moved between the page and now) is left
out, like anything outside the client's scope.
"""

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from booking.models import OutboxEvent, Slot

from .feed import FeedPage
from .fhir import resources
from .selectors import appointment_queryset, slot_queryset

FEED_CURSOR_EXTENSION = f"{resources.BASE}/StructureDefinition/feed-cursor"
FEED_EVENT_EXTENSION = f"{resources.BASE}/StructureDefinition/feed-event"


@dataclass(frozen=True)
class HistoryBundle:
    bundle: dict[str, Any]
    # The appointments the bundle carries: each one sent is an audit row (invariant 7).
    appointment_ids: list[int]

    @property
    def entries(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.bundle["entry"]
        return entries


def _version(event: OutboxEvent, key: str, current: int) -> int:
    value = event.payload.get(key) if isinstance(event.payload, dict) else None
    return value if isinstance(value, int) else current


def _method(kind: str) -> tuple[str, str]:
    if kind.endswith((".booked", ".created")):
        return "POST", "201"
    if kind.endswith(".withdrawn"):
        return "DELETE", "204"
    return "PUT", "200"


def history_bundle(
    page: FeedPage,
    *,
    clinic_ids: Collection[int],
    base_url: str,
    self_url: str,
    next_url: str,
    now: dt.datetime,
    meta_extensions: list[dict[str, Any]] | None = None,
) -> HistoryBundle:
    appointment_ids = {e.appointment_id for e in page.events if e.appointment_id}
    slot_ids = {e.slot_id for e in page.events if e.slot_id and not e.appointment_id}
    appointments = {a.pk: a for a in appointment_queryset(clinic_ids).filter(pk__in=appointment_ids)}
    slots = {s.pk: s for s in slot_queryset(clinic_ids).filter(pk__in=slot_ids)} if slot_ids else {}
    entries = []
    sent: list[int] = []
    for event in page.events:
        method, status = _method(event.kind)
        entry: dict[str, Any] = {
            "extension": [
                {
                    "url": FEED_EVENT_EXTENSION,
                    "extension": [
                        {"url": "seq", "valueString": str(event.feed_seq)},
                        {"url": "kind", "valueCode": event.kind},
                    ],
                }
            ]
        }
        if event.appointment_id:
            row: Any = appointments.get(event.appointment_id)
            if row is None:  # not in the client's clinics any more (moved between pages)
                continue
            type_name, version = "Appointment", _version(event, "appointment_version", row.version)
            entry["fullUrl"] = f"{base_url}Appointment/{row.pk}"
            entry["resource"] = resources.appointment(row)
            sent.append(row.pk)
        else:
            row = slots.get(event.slot_id or 0)
            if row is None:
                continue
            type_name, version = "Slot", _version(event, "version", row.version)
            entry["fullUrl"] = f"{base_url}Slot/{row.pk}"
            # A withdrawn slot is a deleted resource: its entries carry no resource.
            if row.status != Slot.Status.CANCELLED:
                entry["resource"] = resources.slot(row)
        entry["request"] = {
            "method": method,
            "url": type_name if method == "POST" else f"{type_name}/{row.pk}",
        }
        entry["response"] = {
            "status": status,
            "etag": f'W/"{version}"',
            "lastModified": resources.instant(event.created_at),
        }
        entries.append(entry)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "meta": {
            "lastUpdated": resources.instant(now),
            "extension": [
                {"url": FEED_CURSOR_EXTENSION, "valueString": str(page.next_cursor)},
                *(meta_extensions or []),
            ],
        },
        "type": "history",
        "timestamp": resources.instant(now),
        "link": [{"relation": "self", "url": self_url}, {"relation": "next", "url": next_url}],
        "entry": entries,
    }
    return HistoryBundle(bundle=bundle, appointment_ids=sent)
