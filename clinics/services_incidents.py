"""The board's register of confidentiality incidents (Law 25, art. 3.5 to 3.8)."""

from django.db import transaction
from django.utils import timezone

from citizens.models import User

from .audit_chain import chain_append, chain_for_model
from .models import PrivacyIncident, StaffAuditEvent


def privacy_incident_save(*, incident: PrivacyIncident, by: User) -> PrivacyIncident:
    """Create or change a register entry (already validated) and audit it in the staff chain."""
    creating = incident.pk is None
    with transaction.atomic():
        if creating:
            incident.created_by = by
        incident.save()
        chain_append(
            chain_for_model(StaffAuditEvent),
            [
                StaffAuditEvent(
                    user=by,
                    clinic=None,
                    action="create" if creating else "update",
                    resource_type="PrivacyIncident",
                    resource_id=incident.pk,
                    purpose="incident",
                    at=timezone.now(),
                )
            ],
        )
    return incident
