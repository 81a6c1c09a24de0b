"""The board's help desk finds a citizen's appointment by confirmation reference or by NAM.

Only with a recorded reason, only the minimum needed to help (reference, status, time, clinic,
practitioner, channel: never the NAM, the birth date or the contact details), and every lookup
audited: one ``HelpdeskLookup`` row (who, when, by what, why, which appointments), found or not, and
one ``StaffAuditEvent`` per citizen shown (invariant 7), in the same transaction as the read.
"""

import datetime as dt
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from citizens.models import User
from clinics.audit import audit_staff_read

from .models import Appointment, HelpdeskLookup

# A NAM lookup shows the appointments of the last 90 days and all upcoming ones, at most 20.
NAM_LOOKBACK = timedelta(days=90)
NAM_MAX = 20


def helpdesk_lookup(
    *, user: User, by: str, value: str, why: str, details: str, now: dt.datetime | None = None
) -> list[Appointment]:
    """``value`` is a normalized reference (``by="reference"``) or NAM (``by="nam"``)."""
    now = now or timezone.now()
    # Partner-sandbox appointments (synthetic citizens) are no help-desk business (docs/vendors.md).
    rows = Appointment.objects.select_related("clinic", "slot__practitioner").filter(clinic__is_sandbox=False)
    if by == HelpdeskLookup.By.REFERENCE:
        found = list(rows.filter(reference=value)[:1])
    else:
        found = list(
            rows.filter(citizen__nam=value, start__gte=now - NAM_LOOKBACK).order_by("start")[:NAM_MAX]
        )
    with transaction.atomic():
        HelpdeskLookup.objects.create(
            user=user, by=by, why=why, details=details, appointment_ids=[a.pk for a in found], at=now
        )
        audit_staff_read(
            user=user, clinic=None, purpose="helpdesk", citizen_ids=[a.citizen_id for a in found]
        )
    return found
