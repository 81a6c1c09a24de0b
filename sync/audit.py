"""Invariant 7: every response that carries a citizen's data to an EMR writes one audit row each."""

from collections.abc import Iterable

from django.utils import timezone

from .models import AuditEvent, EmrClient


def audit_record(*, emr_client: EmrClient, action: str, resource_type: str, ids: Iterable[int]) -> int:
    """One row per record sent, in one INSERT; ids only, never personal data."""
    now = timezone.now()
    rows = [
        AuditEvent(
            emr_client=emr_client,
            action=action,
            resource_type=resource_type,
            resource_id=pk,
            at=now,
            purpose="emr-sync",
        )
        for pk in ids
    ]
    AuditEvent.objects.bulk_create(rows)
    return len(rows)
