"""Invariant 7: every response that carries a citizen's data to an EMR writes one audit row each."""

from collections.abc import Iterable

from django.utils import timezone

from clinics.audit_chain import chain_append, chain_for_model

from .models import AuditEvent, EmrClient


def audit_record(*, emr_client: EmrClient, action: str, resource_type: str, ids: Iterable[int]) -> int:
    """One row per record sent, in one INSERT, linked to the EMR chain; ids only."""
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
    chain_append(chain_for_model(AuditEvent), rows)
    return len(rows)
