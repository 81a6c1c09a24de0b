"""Invariant 7: every staff response that carries a citizen's data writes one audit row per citizen."""

from collections.abc import Iterable
from datetime import datetime

from django.utils import timezone

from citizens.models import User

from .audit_chain import chain_append, chain_for_model
from .models import Clinic, StaffAuditEvent


def audit_staff_read(
    *, user: User, clinic: Clinic | None, purpose: str, citizen_ids: Iterable[int | None]
) -> int:
    """One row per citizen shown, in one INSERT, linked to the staff chain; ids only. An anonymized
    appointment (no citizen, ``None``) shows nobody: no row."""
    now = timezone.now()
    rows = [
        StaffAuditEvent(
            user=user,
            clinic=clinic,
            action="read",
            resource_type="Citizen",
            resource_id=pk,
            purpose=purpose,
            at=now,
        )
        for pk in dict.fromkeys(citizen_ids)
        if pk is not None
    ]
    chain_append(chain_for_model(StaffAuditEvent), rows)
    return len(rows)


def staff_action_audit(
    *,
    by: User,
    clinic: Clinic | None,
    action: str,
    resource_type: str,
    resource_id: int,
    purpose: str,
    now: datetime,
) -> StaffAuditEvent:
    """One audit row for a staff decision (ids only): who, what, on which record, when, why; linked
    to the staff hash chain like every other row (``clinics.audit_chain``)."""
    row = StaffAuditEvent(
        user=by,
        clinic=clinic,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        purpose=purpose,
        at=now,
    )
    chain_append(chain_for_model(StaffAuditEvent), [row])
    return row
