"""The board's review page, the same for every queue it decides on (clinic registrations, EMR
vendors): an Approve button, and a Reject button with its required reason (``RejectForm``). The
decisions themselves are ``clinics.services_board``'s."""

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _

from .forms_onboarding import RejectForm


@dataclass(frozen=True)
class BoardReview:
    """What the review page shows next: ``response`` when the POST is done (back to the queue after a
    decision, back to the page with the error otherwise), else the page with ``reject_form``."""

    response: HttpResponse | None
    reject_form: RejectForm
    status: int = 200


def board_review_post(
    request: HttpRequest,
    *,
    approve: Callable[[], str],
    reject: Callable[[str], object],
    queue_url: str,
    review_url: str,
) -> BoardReview:
    """Handle the review page's request: ``approve()`` decides and returns the message to show;
    ``reject(reason)`` decides. A decision refused (already decided, not a board administrator) comes
    back to the page as a message; an unknown action is a 400, a rejection without reason a 422."""
    reject_form = RejectForm()
    if request.method != "POST":
        return BoardReview(None, reject_form)
    action = request.POST.get("action")
    try:
        if action == "approve":
            messages.success(request, approve())
            return BoardReview(redirect(queue_url), reject_form)
        if action == "reject":
            reject_form = RejectForm(request.POST)
            if reject_form.is_valid():
                reject(reject_form.cleaned_data["reason"])
                messages.success(request, _("The request is rejected; the requester is told why by e-mail."))
                return BoardReview(redirect(queue_url), reject_form)
            return BoardReview(None, reject_form, 422)
        return BoardReview(None, reject_form, 400)
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc))
        return BoardReview(redirect(review_url), reject_form)
