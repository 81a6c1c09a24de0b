"""The board's decision on a pending request, the same for every queue it reviews: a clinic's
registration (``clinics.services_onboarding``) and an EMR vendor's sandbox request (``sync.vendors``).

Only a board administrator decides. The request row is locked and must still be pending, so two
reviewers deciding at once make one decision and the second is told it was decided. The decision
(status, who, when, a rejection's reason) and its audit row (ids only) are written in the caller's
transaction, beside whatever an approval creates; the requester's e-mail leaves after commit.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.functional import Promise
from django.utils.translation import gettext as _

from citizens.models import User

from .audit import staff_action_audit
from .models import Clinic
from .selectors_onboarding import is_board_admin


@dataclass(frozen=True)
class BoardQueue:
    """One kind of request the board decides on.

    ``model`` has ``status`` (``Status.PENDING``, ``APPROVED``, ``REJECTED``), ``decided_at``,
    ``decided_by``, ``decision_reason`` and ``language``; ``email_field`` names its requester's
    address; ``email_send`` renders and sends their e-mail (``to``, ``language``, ``template``,
    ``context``); ``purpose`` goes in the audit row; ``refusal`` is what anyone else is told."""

    model: Any
    purpose: str
    refusal: str | Promise
    email_field: str
    email_send: Callable[..., None]

    def require_board_admin(self, user: User) -> None:
        if not is_board_admin(user):
            raise PermissionDenied(self.refusal)

    def rejection_reason(self, *, by: User, reason: str) -> str:
        """The reason, stripped, once ``by`` may decide; the requester reads it, so it is required."""
        reason = reason.strip()
        self.require_board_admin(by)
        if not reason:
            raise ValidationError(_("Give the reason for the rejection: the requester will read it."))
        return reason

    def pending_locked(self, pk: int) -> Any:
        """The request, locked until the caller's transaction ends; refused unless still pending."""
        row = self.model.objects.select_for_update().filter(pk=pk).first()
        if row is None:
            raise ValidationError(_("This request does not exist."))
        if row.status != self.model.Status.PENDING:
            raise ValidationError(_("This request was already decided."))
        return row

    def approve(
        self,
        row: Any,
        *,
        by: User,
        now: datetime,
        template: str,
        context: Mapping[str, object],
        audit_clinic: Clinic | None = None,
        **fields: object,
    ) -> None:
        """Record the approval (with ``fields``, what it created), audit it, e-mail after commit."""
        self._decide(
            row, self.model.Status.APPROVED, "approve", by, now, template, context, audit_clinic, fields
        )

    def reject(
        self, row: Any, *, by: User, now: datetime, reason: str, template: str, context: Mapping[str, object]
    ) -> None:
        self._decide(
            row,
            self.model.Status.REJECTED,
            "reject",
            by,
            now,
            template,
            context,
            None,
            {"decision_reason": reason},
        )

    def _decide(
        self,
        row: Any,
        status: str,
        action: str,
        by: User,
        now: datetime,
        template: str,
        context: Mapping[str, object],
        clinic: Clinic | None,
        fields: Mapping[str, object],
    ) -> None:
        self.model.objects.filter(pk=row.pk).update(status=status, decided_at=now, decided_by=by, **fields)
        staff_action_audit(
            by=by,
            clinic=clinic,
            action=action,
            resource_type=self.model.__name__,
            resource_id=row.pk,
            purpose=self.purpose,
            now=now,
        )
        to, language = getattr(row, self.email_field), row.language
        transaction.on_commit(
            lambda: self.email_send(to=to, language=language, template=template, context=context)
        )
