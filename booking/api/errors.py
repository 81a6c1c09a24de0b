"""One error shape for the whole citizen API.

Every failure, whatever raised it, leaves as::

    {"error": {"code": "slot_unavailable", "message": "…", "fields": {"nam": ["…"]}, …}}

``code`` is stable for programs; ``message`` is for people, in the request's language (French
unless ``Accept-Language`` asks for English); ``fields`` appears when particular inputs are wrong.
Unexpected exceptions become a bare 500: the details go to the log, never to the client.
"""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from booking import errors as booking_errors
from booking.selectors import SearchError
from citizens.nam import NamError
from citizens.services import IdentificationFailed
from config.ratelimit import RateLimited

logger = logging.getLogger(__name__)

NAM_MESSAGES = {
    "required": gettext_lazy("Enter your health-insurance number."),
    "format": gettext_lazy("The health-insurance number has 4 letters and 8 digits, e.g. TREM 5551 2314."),
    "birth_date": gettext_lazy(
        "The date of birth encoded in this health-insurance number does not exist. "
        "Check the number on your card."
    ),
}

IDENTIFICATION_FAILED_MESSAGE = gettext_lazy(
    "We could not confirm these details with a valid health-insurance card. Check that each one is "
    "exactly as printed on your card. If you need care in the meantime, call Info-Santé 811 (24/7) "
    "or go to a walk-in clinic; in an emergency, call 911."
)

# SearchError code -> (status, error code, field or None, message)
SEARCH_ERRORS = {
    "not_enrolled": (
        422,
        "not_enrolled",
        "path",
        gettext_lazy(
            "You are not enrolled with a family doctor, so there is no doctor's agenda to search. "
            "Search the clinics near you instead (path=near)."
        ),
    ),
    "no_gmf": (
        422,
        "no_gmf",
        "path",
        gettext_lazy(
            "Your family doctor is not part of a family-medicine group (GMF). Search your doctor's "
            "agenda (path=mine) or the clinics near you (path=near)."
        ),
    ),
    "postal_code": (
        400,
        "invalid",
        "postal_code",
        gettext_lazy("Enter a postal code to search near it; format A1A 1A1."),
    ),
    "postal_code_unknown": (
        400,
        "invalid",
        "postal_code",
        gettext_lazy("Unknown postal code; format A1A 1A1."),
    ),
    "path": (400, "invalid", "path", gettext_lazy("Choose where to search: mine, gmf or near.")),
    "identify": (
        401,
        "not_authenticated",
        None,
        gettext_lazy("Identify with your health-insurance card first."),
    ),
}


def nam_error_message(code: str) -> str:
    return str(NAM_MESSAGES.get(code, NAM_MESSAGES["format"]))


def error_response(
    status_code: int,
    code: str,
    message: object,
    *,
    fields: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {"code": code, "message": str(message)}
    if fields:
        body["fields"] = fields
    body.update(extra)
    return Response({"error": body}, status=status_code, headers=headers)


def _flatten(detail: object, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error details as ``{"field": [...], "items.0.field": [...]}``."""
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            name = "non_field_errors" if key == "non_field_errors" and not prefix else f"{prefix}{key}"
            out.update(_flatten(value, f"{name}."))
        return out
    if isinstance(detail, list) and any(isinstance(item, dict | list) for item in detail):
        out = {}
        for index, value in enumerate(detail):
            out.update(_flatten(value, f"{prefix}{index}."))
        return out
    key = prefix.rstrip(".") or "non_field_errors"
    items = detail if isinstance(detail, list) else [detail]
    return {key: [str(item) for item in items]}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """REST framework's EXCEPTION_HANDLER: every exception becomes the one error shape."""
    set_rollback()
    if isinstance(exc, booking_errors.ApplicationError):
        return error_response(exc.status, exc.code, exc.message, **exc.extra)
    if isinstance(exc, exceptions.ValidationError):
        return error_response(
            400,
            "invalid",
            _("Some fields are not valid. See the details for each one."),
            fields=_flatten(exc.detail),
        )
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        # Set by APIView.handle_exception when an authenticator offers a challenge.
        auth_header: str | None = getattr(exc, "auth_header", None)
        headers = {"WWW-Authenticate": auth_header} if auth_header else None
        message: object
        if isinstance(exc, exceptions.NotAuthenticated):
            code = "not_authenticated"
            message = _(
                "Identify with your health-insurance card first, then send the token as a Bearer token."
            )
        else:
            codes = exc.get_codes()
            code = codes if isinstance(codes, str) else "token_invalid"
            message = exc.detail
        # DRF answers 403 when no authenticator offers a WWW-Authenticate challenge.
        status_code = 401 if headers else exc.status_code
        return error_response(status_code, code, message, headers=headers)
    if isinstance(exc, RateLimited):
        return error_response(
            429,
            "rate_limited",
            _("Too many attempts. Please try again in %(seconds)d seconds.") % {"seconds": exc.retry_after},
            headers={"Retry-After": str(exc.retry_after)},
            retry_after=exc.retry_after,
        )
    if isinstance(exc, IdentificationFailed):
        return error_response(403, "identification_failed", IDENTIFICATION_FAILED_MESSAGE)
    if isinstance(exc, NamError):
        return error_response(
            400,
            "invalid",
            _("Some fields are not valid. See the details for each one."),
            fields={"nam": [nam_error_message(exc.code)]},
        )
    if isinstance(exc, SearchError):
        status_code, code, field, message = SEARCH_ERRORS.get(
            exc.code, (400, "invalid", None, gettext_lazy("This search cannot be run."))
        )
        return error_response(status_code, code, message, fields={field: [str(message)]} if field else None)
    if isinstance(exc, Http404 | exceptions.NotFound):
        return error_response(404, "not_found", _("Not found."))
    if isinstance(exc, PermissionDenied | exceptions.PermissionDenied):
        return error_response(403, "permission_denied", _("You are not allowed to do this."))
    if isinstance(exc, exceptions.Throttled):
        wait = int(exc.wait or 1)  # type: ignore[attr-defined]  # DRF sets Throttled.wait; its stubs omit it
        return error_response(
            429,
            "rate_limited",
            _("Too many attempts. Please try again in %(seconds)d seconds.") % {"seconds": wait},
            headers={"Retry-After": str(wait)},
            retry_after=wait,
        )
    if isinstance(exc, exceptions.APIException):
        # Malformed JSON, wrong method, unsupported media type…: DRF's own (translated) message.
        # (APIView.finalize_response adds the Allow header of a 405.)
        return error_response(exc.status_code, exc.default_code, exc.detail)
    # The client learns nothing of the cause; the log gets the whole traceback.
    view = type(context.get("view")).__name__ if context else ""
    logger.error("unexpected error in the citizen API", exc_info=exc, extra={"view": view})
    return error_response(
        status.HTTP_500_INTERNAL_SERVER_ERROR,
        "server_error",
        _("Something went wrong on our side. Please try again in a few minutes."),
    )
