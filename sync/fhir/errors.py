"""One error shape for the FHIR API: every failure leaves as an OperationOutcome.

Configured per view (``FhirView.get_exception_handler``), not in REST_FRAMEWORK, because the citizen
API has its own error shape. Unexpected exceptions become a 500 whose body says nothing of the cause;
the traceback goes to the log.
"""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

logger = logging.getLogger(__name__)


class FhirError(Exception):
    """An error with its HTTP status and FHIR issue code (http://hl7.org/fhir/issue-type)."""

    def __init__(
        self, status: int, code: str, diagnostics: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.headers = headers or {}


def operation_outcome(code: str, diagnostics: str, *, severity: str = "error") -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def outcome_response(
    status: int, code: str, diagnostics: str, *, headers: dict[str, str] | None = None
) -> Response:
    severity = "fatal" if status >= 500 else "error"
    return Response(operation_outcome(code, diagnostics, severity=severity), status=status, headers=headers)


def _detail_text(detail: Any) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {_detail_text(value)}" for key, value in detail.items())
    if isinstance(detail, list):
        return "; ".join(_detail_text(item) for item in detail)
    return str(detail)


# DRF exception class -> (status, issue code). Checked in order: subclasses first.
_DRF_ERRORS: list[tuple[type[Exception], int, str]] = [
    (exceptions.ParseError, 400, "structure"),
    (exceptions.ValidationError, 400, "invalid"),
    (exceptions.PermissionDenied, 403, "forbidden"),
    (exceptions.NotFound, 404, "not-found"),
    (exceptions.MethodNotAllowed, 405, "not-supported"),
    (exceptions.NotAcceptable, 406, "not-supported"),
    (exceptions.UnsupportedMediaType, 415, "not-supported"),
]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    set_rollback()
    if isinstance(exc, FhirError):
        return outcome_response(exc.status, exc.code, exc.diagnostics, headers=exc.headers)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        auth_header = getattr(exc, "auth_header", None)
        headers = {"WWW-Authenticate": auth_header} if auth_header else None
        message = (
            "Send an access token from /oauth/token/ as: Authorization: Bearer <token>."
            if isinstance(exc, exceptions.NotAuthenticated)
            else str(exc.detail)
        )
        return outcome_response(401, "login", message, headers=headers)
    if isinstance(exc, exceptions.Throttled):
        wait = max(1, int(getattr(exc, "wait", None) or 1))
        return outcome_response(
            429,
            "throttled",
            f"Too many requests; retry in {wait} seconds.",
            headers={"Retry-After": str(wait)},
        )
    if isinstance(exc, Http404):
        return outcome_response(404, "not-found", "Resource not found.")
    if isinstance(exc, PermissionDenied):
        return outcome_response(403, "forbidden", "Not allowed.")
    if isinstance(exc, RequestDataTooBig):
        return outcome_response(413, "too-costly", "The request body is too large.")
    for exc_class, status, code in _DRF_ERRORS:
        if isinstance(exc, exc_class):
            return outcome_response(status, code, _detail_text(exc.detail))  # type: ignore[attr-defined]
    if isinstance(exc, exceptions.APIException):
        return outcome_response(exc.status_code, "processing", _detail_text(exc.detail))
    view = type(context.get("view")).__name__ if context else ""
    logger.error("unexpected error in the FHIR API", exc_info=exc, extra={"view": view})
    return outcome_response(500, "exception", "Internal error. Please retry later.")
