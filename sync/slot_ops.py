"""The EMR's slot writes, one function per FHIR interaction, shared by the REST views
(``sync.views``) and the transaction / batch Bundles (``sync.bundle_views``).

Each takes the calling client's clinics, reads the body with ``sync.fhir.writes``, writes through
``booking.services`` (the only writer of slots) and returns the HTTP status with the slot as the API
shows it (``slot_queryset``); every refusal is a ``FhirError``.
"""

import dataclasses
from collections.abc import Collection
from typing import Any

from django.db import IntegrityError

from booking import errors as booking_errors
from booking import services as booking_services
from booking.models import Slot

from .fhir import resources, writes
from .fhir.errors import FhirError
from .selectors import slot_queryset

BUNDLE_MAX_ENTRIES = 500  # entries in one transaction or batch Bundle (sync.bundle_views)


def slot_row(clinic_ids: Collection[int], pk: int | str) -> Slot:
    # isascii: "²" is a digit for isdigit, not for int (a Bundle entry's URL is not checked by a route).
    text = str(pk)
    row = (
        slot_queryset(clinic_ids).filter(pk=int(text)).first() if text.isascii() and text.isdigit() else None
    )
    if row is None:
        raise FhirError(404, "not-found", f"Slot/{pk} is not known.")
    return row


def _create(clinic_ids: Collection[int], data: writes.SlotInput) -> Slot:
    try:
        slot = booking_services.slot_create(
            role=data.role,
            start=data.start,
            end=data.end,
            reasons=data.reasons,
            audience=data.audience,
            modality=data.modality,
            source=Slot.Source.EMR,
            external_id=data.external_id,
        )
    except booking_errors.ApplicationError as exc:
        raise writes.from_booking_error(exc) from exc
    except IntegrityError as exc:  # the identifier's unique constraint, under a concurrent create
        raise FhirError(409, "duplicate", "A slot with this identifier was just created.") from exc
    return slot_row(clinic_ids, slot.pk)


def slot_op_create(clinic_ids: Collection[int], body: dict[str, Any]) -> tuple[int, Slot]:
    """``POST Slot``: 201."""
    data = writes.slot_input(body, clinic_ids=clinic_ids)
    writes.slot_create_checks(data)
    if slot_queryset(clinic_ids).filter(clinic_id=data.role.clinic_id, external_id=data.external_id).exists():
        raise FhirError(
            409, "duplicate", "A slot with this identifier exists; update it with PUT Slot?identifier=…."
        )
    return 201, _create(clinic_ids, data)


def slot_op_upsert(
    clinic_ids: Collection[int], params: list[tuple[str, str]], body: dict[str, Any]
) -> tuple[int, Slot]:
    """``PUT Slot?identifier=system|value``: 201 (created) or 200 (updated, or the same again)."""
    clinic_id, value = writes.conditional_identifier(params, clinic_ids)
    data = writes.slot_input(body, clinic_ids=clinic_ids)
    if data.external_id and data.external_id != value or data.role.clinic_id != clinic_id:
        raise writes.rule("The body's identifier and schedule must match the identifier in the URL.")
    matches = list(slot_queryset(clinic_ids).filter(clinic_id=clinic_id, external_id=value)[:2])
    if len(matches) > 1:
        raise FhirError(412, "multiple-matches", "More than one slot has this identifier.")
    if matches:
        return 200, _update(clinic_ids, matches[0], data, expected_version=None)
    data = dataclasses.replace(data, external_id=value)
    writes.slot_create_checks(data)
    try:
        return 201, _create(clinic_ids, data)
    except FhirError as exc:
        # A concurrent retry created it first: update it as if it had been there.
        if exc.status != 409:
            raise
        row = slot_queryset(clinic_ids).filter(clinic_id=clinic_id, external_id=value).first()
        if row is None:
            raise
        return 200, _update(clinic_ids, row, data, expected_version=None)


def slot_op_update(
    clinic_ids: Collection[int], pk: str, body: dict[str, Any], if_match: str | None
) -> tuple[int, Slot]:
    """``PUT Slot/{id}`` (``If-Match`` optional): 200."""
    row = slot_row(clinic_ids, pk)
    expected = writes.if_match_version(if_match)
    data = writes.slot_input(body, clinic_ids=clinic_ids, pk=pk)
    return 200, _update(clinic_ids, row, data, expected_version=expected)


def slot_op_delete(clinic_ids: Collection[int], pk: str, if_match: str | None) -> int:
    """``DELETE Slot/{id}``: withdraw a free slot, 204."""
    row = slot_row(clinic_ids, pk)
    expected = writes.if_match_version(if_match)
    try:
        booking_services.slot_withdraw(slot_id=row.pk, expected_version=expected, channel=Slot.Source.EMR)
    except booking_errors.ApplicationError as exc:
        raise writes.from_booking_error(exc) from exc
    return 204


def _update(
    clinic_ids: Collection[int], row: Slot, data: writes.SlotInput, *, expected_version: int | None
) -> Slot:
    if row.status == Slot.Status.CANCELLED:
        raise FhirError(
            410, "deleted", f"Slot/{row.pk} was withdrawn; publish a new slot with a new identifier."
        )
    if data.role.pk != row.role_id:
        raise writes.rule("A slot cannot move to another schedule; withdraw it and publish a new one.")
    if data.external_id and row.external_id and data.external_id != row.external_id:
        raise writes.rule("Slot.identifier cannot change.")
    current = resources.SLOT_STATUS[Slot.Status(row.status)]
    if data.status != current:
        if row.status != Slot.Status.FREE:
            raise writes.from_booking_error(booking_errors.SlotNotFree())
        raise writes.rule("Slot.status is set by bookings; publish free slots and withdraw them with DELETE.")
    try:
        booking_services.slot_update(
            slot_id=row.pk,
            expected_version=expected_version,
            start=data.start,
            end=data.end,
            reasons=data.reasons,
            audience=data.audience,
            modality=data.modality,
            channel=Slot.Source.EMR,
        )
    except booking_errors.ApplicationError as exc:
        raise writes.from_booking_error(exc) from exc
    return slot_row(clinic_ids, row.pk)
