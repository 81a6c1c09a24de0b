"""One error type for every rule a booking can break, mapped to one shape on pages and the API."""

from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


class ApplicationError(Exception):
    """A rule refused the action. ``code`` is stable for API clients; ``message`` is for people."""

    code = "error"
    status = 400
    message: "StrOrPromise" = _("The request could not be completed.")

    def __init__(self, message: "StrOrPromise | None" = None, *, extra: dict[str, Any] | None = None) -> None:
        if message is not None:
            self.message = message
        self.extra = extra or {}
        super().__init__(str(self.code))


class SlotUnavailable(ApplicationError):
    code = "slot_unavailable"
    status = 409
    message = _("Sorry, this time was just taken by someone else.")


class HoldExpired(ApplicationError):
    code = "hold_expired"
    status = 409
    message = _("Your hold on this time has expired. If it is still free, you can choose it again.")


class SlotNotFound(ApplicationError):
    code = "slot_not_found"
    status = 404
    message = _("This time does not exist or is no longer offered.")


class NotEligible(ApplicationError):
    code = "not_eligible"
    status = 403
    message = _("This time is reserved for other patients.")


class ReasonNotAccepted(ApplicationError):
    code = "reason_not_accepted"
    status = 422
    message = _("This time is not offered for that reason for the visit.")


class TooSoon(ApplicationError):
    code = "too_soon"
    status = 422
    message = _("This time is too soon to be booked online. Please call the clinic.")


class LimitReached(ApplicationError):
    code = "limit_reached"
    status = 422
    message = _(
        "You already have the maximum number of upcoming appointments booked online. "
        "Cancel one before booking another."
    )


class PatientOverlap(ApplicationError):
    code = "patient_overlap"
    status = 409
    message = _("You already have an appointment at that time.")


class AppointmentNotFound(ApplicationError):
    code = "appointment_not_found"
    status = 404
    message = _("We could not find this appointment.")


class CancelTooLate(ApplicationError):
    code = "cancel_too_late"
    status = 422
    message = _("It is too late to cancel online. Please call the clinic.")


class NotCancellable(ApplicationError):
    code = "not_cancellable"
    status = 409
    message = _("This appointment can no longer be cancelled.")


class InvalidCancelReason(ApplicationError):
    code = "invalid_cancel_reason"
    status = 400
    message = _("Choose a reason for cancelling from the list.")


class Busy(ApplicationError):
    code = "busy"
    status = 503
    message = _("The service is very busy. Please try again in a few seconds.")


class NonexistentLocalTime(ApplicationError):
    code = "nonexistent_local_time"
    status = 400
    message = _(
        "This time does not exist in the clinic's time zone: the clocks move forward that night. "
        "Choose a time after the change."
    )


class AmbiguousLocalTime(ApplicationError):
    code = "ambiguous_local_time"
    status = 400
    message = _(
        "This time happens twice in the clinic's time zone: the clocks move back that night. "
        "Choose a time outside the repeated hour."
    )


class PractitionerOverlap(ApplicationError):
    code = "practitioner_overlap"
    status = 409
    message = _("The practitioner already has a slot at that time, in this clinic or another.")


class InvalidSlot(ApplicationError):
    code = "invalid_slot"
    status = 400
    message = _("A slot needs a length between 5 minutes and 4 hours and at least one reason.")


class VersionMismatch(ApplicationError):
    code = "version_mismatch"
    status = 412
    message = _("This record was changed meanwhile. Read it again before changing it.")


class SlotNotFree(ApplicationError):
    code = "slot_not_free"
    status = 409
    message = _("This slot is booked or taken out: it cannot be changed or withdrawn.")


class InvalidStatusChange(ApplicationError):
    code = "invalid_status_change"
    status = 422
    message = _("This appointment cannot move to that status from its current one.")


class PatientNotFound(ApplicationError):
    code = "patient_not_found"
    status = 422
    message = _("The patient could not be identified.")


class SameSlot(ApplicationError):
    code = "same_slot"
    status = 422
    message = _("Your appointment is already at this time. Choose another time to move it.")


class SlotInPast(ApplicationError):
    code = "slot_in_past"
    status = 422
    message = _("This time is already past: a slot can only be published for a future time.")


class ClinicUsesEmr(ApplicationError):
    code = "clinic_uses_emr"
    status = 403
    message = _("This clinic keeps its agenda in its EMR: change its slots in the EMR.")


class NothingToPublish(ApplicationError):
    code = "nothing_to_publish"
    status = 422
    message = _("There is no time to publish.")


class PractitionerNotAttached(ApplicationError):
    code = "practitioner_not_attached"
    status = 422
    message = _("This practitioner does not practise at this clinic (or no longer does).")


class InvalidPeriod(ApplicationError):
    code = "invalid_period"
    status = 400
    message = _("The end of the period must come after its start.")


class AgendaChanged(ApplicationError):
    code = "agenda_changed"
    status = 409
    message = _("The agenda changed since the preview. Check the new preview, then confirm again.")


class OverLimitReasonRequired(ApplicationError):
    code = "over_limit_reason_required"
    status = 422
    message = _(
        "This patient already has the maximum number of upcoming appointments allowed online: "
        "write why you book one more."
    )


# The waitlist (docs/waitlist.md).


class WaitlistLimitReached(ApplicationError):
    code = "waitlist_limit_reached"
    status = 422
    message = _(
        "You already have the maximum number of waiting-list requests. Withdraw one before adding another."
    )


class WaitlistScopeUnknown(ApplicationError):
    code = "waitlist_scope_unknown"
    status = 422
    message = _("We cannot tell which doctor, group or area this request is for. Check your choices.")


class WaitlistNoContact(ApplicationError):
    code = "waitlist_no_contact"
    status = 422
    message = _("We need an e-mail address, or a mobile number for text messages, to tell you.")


class WaitlistRequestNotFound(ApplicationError):
    code = "waitlist_request_not_found"
    status = 404
    message = _("We could not find this waiting-list request.")


class OfferNotFound(ApplicationError):
    code = "offer_not_found"
    status = 404
    message = _("This link does not match any offer. It may be incomplete.")


class OfferUsed(ApplicationError):
    code = "offer_used"
    status = 409
    message = _(
        "This offer was already used: the appointment is booked. You will find it in your appointments."
    )


class OfferExpired(ApplicationError):
    code = "offer_expired"
    status = 410
    message = _("This offer has expired and the time was offered to the next person waiting.")


class OfferClosed(ApplicationError):
    code = "offer_closed"
    status = 410
    message = _("This offer is no longer open: it was declined or the request was withdrawn.")
