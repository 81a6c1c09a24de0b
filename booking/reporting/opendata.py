"""Open data: free public slots in the SMART Scheduling Links format (github.com/smart-on-fhir/
smart-scheduling-links): a ``$bulk-publish`` manifest and NDJSON files of FHIR Location, Schedule and
Slot resources.

Written by a Celery task (``booking.tasks.opendata_publish``) into ``settings.OPENDATA_ROOT``, never
per request: each file is written beside its final name and moved into place, so a reader always sees
a complete file; the manifest is written last. One Location per active clinic with a public free
slot, one Schedule per such clinic (family medicine, its public slots), Slot files split by health
region. Only slots any citizen may book online (audience ``public``), free and not held, starting
after the clinic's minimum notice and within ``settings.OPENDATA_DAYS``; nothing about patients or
practitioners.
"""

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from django.conf import settings
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from clinics.models import Clinic

from ..models import Audience, Slot, mask_to_reasons

MANIFEST = "manifest.json"
DEEP_LINK = "http://fhir-registry.smarthealthit.org/StructureDefinition/booking-deep-link"
BOOKING_PHONE = "http://fhir-registry.smarthealthit.org/StructureDefinition/booking-phone"
SERVICE_TYPE = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/service-type",
            "code": "124",
            "display": "General Practice",
        }
    ]
}


def root() -> Path:
    return Path(settings.OPENDATA_ROOT)


def _url(path: str) -> str:
    return str(settings.SITE_URL).rstrip("/") + path


def file_url(name: str) -> str:
    return _url(reverse("opendata:file", kwargs={"name": name}))


def location_resource(clinic: Clinic) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Location",
        "id": str(clinic.pk),
        "name": clinic.name,
        "address": {
            "line": [clinic.address],
            "city": clinic.city,
            "state": "QC",
            "postalCode": clinic.postal_code,
            "country": "CA",
        },
        "position": {"latitude": clinic.latitude, "longitude": clinic.longitude},
    }
    if clinic.phone:
        resource["telecom"] = [{"system": "phone", "value": clinic.phone}]
    return resource


def schedule_resource(clinic: Clinic) -> dict[str, Any]:
    return {
        "resourceType": "Schedule",
        "id": str(clinic.pk),
        "serviceType": [SERVICE_TYPE],
        "actor": [{"reference": f"Location/{clinic.pk}"}],
    }


def deep_link(slot_start: datetime, reasons: int, clinic: Clinic) -> str:
    """The citizen search near the clinic, on the slot's day, for a reason the slot accepts: the
    citizen identifies with the health-insurance card, then holds and books the time there."""
    day = slot_start.astimezone(clinic.tz).date().isoformat()
    query = {
        "path": "near",
        "reason": mask_to_reasons(reasons)[0],
        "postal_code": clinic.postal_code,
        "date_from": day,
        "date_to": day,
    }
    return _url(reverse("booking:search") + "?" + urlencode(query))


def slot_resource(
    slot_id: int, start: datetime, end: datetime, reasons: int, clinic: Clinic
) -> dict[str, Any]:
    extension: list[dict[str, str]] = [{"url": DEEP_LINK, "valueUrl": deep_link(start, reasons, clinic)}]
    if clinic.phone:
        extension.append({"url": BOOKING_PHONE, "valueString": clinic.phone})
    return {
        "resourceType": "Slot",
        "id": str(slot_id),
        "schedule": {"reference": f"Schedule/{clinic.pk}"},
        "status": "free",
        "start": start.isoformat().replace("+00:00", "Z"),
        "end": end.isoformat().replace("+00:00", "Z"),
        "extension": extension,
    }


def publishable_slots(now: datetime) -> Iterator[tuple[int, datetime, datetime, int, int]]:
    """(id, start, end, reasons, clinic id) of the slots published, clinic by clinic, soonest first."""
    rows = (
        Slot.objects.filter(
            status=Slot.Status.FREE,
            audience=Audience.PUBLIC,
            start__gt=now,
            start__lt=now + timedelta(days=settings.OPENDATA_DAYS),
            clinic__is_active=True,
            clinic__is_sandbox=False,
        )
        .filter(Q(hold_expires__isnull=True) | Q(hold_expires__lte=now))
        .order_by("clinic_id", "start", "id")
        .values_list("pk", "start", "end", "reasons", "clinic_id")
    )
    yield from rows.iterator(chunk_size=5000)


class _AtomicFile:
    """A file written beside its final name and moved into place on close (readers see all or nothing)."""

    def __init__(self, name: str) -> None:
        self.final = root() / name
        fd, self.temp = tempfile.mkstemp(dir=root(), prefix=".tmp-", suffix=".part")
        self.handle: TextIO = os.fdopen(fd, "w", encoding="utf-8")

    def write_resource(self, resource: dict[str, Any]) -> None:
        self.handle.write(json.dumps(resource, ensure_ascii=False, separators=(",", ":")) + "\n")

    def commit(self) -> None:
        self.handle.close()
        os.chmod(self.temp, 0o644)
        os.replace(self.temp, self.final)


def _write_all(name: str, resources: Iterable[dict[str, Any]]) -> None:
    out = _AtomicFile(name)
    for resource in resources:
        out.write_resource(resource)
    out.commit()


def opendata_publish(*, now: datetime | None = None) -> dict[str, int]:
    """Write the NDJSON files and then the manifest; returns how many resources of each type."""
    now = now or timezone.now()
    root().mkdir(parents=True, exist_ok=True)
    clinics = {c.pk: c for c in Clinic.objects.filter(is_active=True, is_sandbox=False)}
    region_files: dict[str, _AtomicFile] = {}
    published: set[int] = set()
    slots = 0
    for slot_id, start, end, reasons, clinic_id in publishable_slots(now):
        clinic = clinics.get(clinic_id)
        if clinic is None or start < now + clinic.min_notice:
            continue
        out = region_files.get(clinic.region_id)
        if out is None:
            out = region_files[clinic.region_id] = _AtomicFile(f"slots-{clinic.region_id}.ndjson")
        out.write_resource(slot_resource(slot_id, start, end, reasons, clinic))
        published.add(clinic_id)
        slots += 1
    for out in region_files.values():
        out.commit()
    with_slots = [clinics[pk] for pk in sorted(published)]
    _write_all("locations.ndjson", (location_resource(c) for c in with_slots))
    _write_all("schedules.ndjson", (schedule_resource(c) for c in with_slots))
    manifest = {
        "transactionTime": now.isoformat().replace("+00:00", "Z"),
        "request": _url(reverse("opendata:manifest")),
        "output": [
            {"type": "Location", "url": file_url("locations")},
            {"type": "Schedule", "url": file_url("schedules")},
            *(
                {"type": "Slot", "url": file_url(f"slots-{region}"), "extension": {"state": ["QC"]}}
                for region in sorted(region_files)
            ),
        ],
        "error": [],
    }
    keep = {MANIFEST, "locations.ndjson", "schedules.ndjson", *(f"slots-{r}.ndjson" for r in region_files)}
    out = _AtomicFile(MANIFEST)
    out.handle.write(json.dumps(manifest, ensure_ascii=False, indent=2))
    out.commit()
    # Slot files of regions that have no public free slot any more: gone from the manifest, then removed.
    for path in root().glob("slots-*.ndjson"):
        if path.name not in keep:
            path.unlink(missing_ok=True)
    return {"locations": len(with_slots), "schedules": len(with_slots), "slots": slots}
