"""Webhook subscriptions over FHIR: ``Subscription`` (R4, channel ``rest-hook``), thin callers of
``sync.webhooks``.

- ``POST Subscription``: create; the answer carries the signing secret, once.
- ``GET Subscription`` (``status``), ``GET Subscription/{id}``: the client's own subscriptions with
  their delivery state (cursor, pending events, failures, next attempt, last error).
- ``PUT Subscription/{id}``: ``status`` ``requested``/``active`` re-activates (delivery resumes
  where it stopped), ``off`` stops; the endpoint and reason may change, the criteria may not.
- ``DELETE Subscription/{id}``: off (kept for history).

Every interaction needs ``system/Appointment.read``: a subscription is a way of reading the feed.
A subscription of another client is not found (404), like any resource outside the client's scope.
"""

from datetime import timedelta
from typing import Any

from django.urls import reverse
from django.utils import timezone
from rest_framework import exceptions, permissions
from rest_framework.request import Request
from rest_framework.response import Response

from . import feed, webhooks
from .fhir import resources
from .fhir.auth import EmrPrincipal
from .fhir.errors import FhirError
from .fhir.writes import bad, rule
from .models import WebhookSubscription
from .views import FhirView, fhir_base_url

REQUIRED_SCOPE = "system/Appointment.read"
SECRET_EXTENSION = f"{resources.BASE}/StructureDefinition/subscription-secret"
DELIVERY_EXTENSION = f"{resources.BASE}/StructureDefinition/subscription-delivery"
# Until when the previous secret also signs deliveries (after POST Subscription/{id}/$rotate-secret).
PREVIOUS_SECRET_UNTIL_EXTENSION = f"{resources.BASE}/StructureDefinition/subscription-previous-secret-until"
DEFAULT_REASON = "Changes to the appointments of my clinics (change feed)"
# FHIR R4 code lists (http://hl7.org/fhir/R4/valueset-subscription-status.html and
# valueset-subscription-channel-type.html): known codes we do not support are 422, others 400.
FHIR_STATUS = {
    WebhookSubscription.Status.ACTIVE: "active",
    WebhookSubscription.Status.DEAD: "error",
    WebhookSubscription.Status.OFF: "off",
}
STATUS_CODES = ("requested", "active", "error", "off")
CHANNEL_TYPES = ("rest-hook", "websocket", "email", "sms", "message")
KNOWN_ELEMENTS = {
    "resourceType",
    "id",
    "meta",
    "text",
    "status",
    "contact",
    "reason",
    "criteria",
    "channel",
    "error",
    "extension",
}


class HasSubscriptionScope(permissions.BasePermission):
    """An EMR client's token with ``system/Appointment.read``, whatever the method."""

    def has_permission(self, request, view) -> bool:
        if not isinstance(request.user, EmrPrincipal) or request.auth is None:
            return False
        if not hasattr(view, request.method.lower()):
            return True  # 405 with Allow for any client
        if not request.auth.allow_scopes([REQUIRED_SCOPE]):
            raise exceptions.PermissionDenied(f"This access token lacks the scope {REQUIRED_SCOPE}.")
        return True


def subscription_resource(sub: WebhookSubscription, *, secret: str | None = None) -> dict[str, Any]:
    pending = webhooks.subscription_pending(sub)
    delivery: list[dict[str, Any]] = [
        {"url": "cursor", "valueString": str(sub.last_delivered_seq)},
        {"url": "pending", "valueInteger": pending},
        {"url": "failures", "valueInteger": sub.failures},
    ]
    if sub.last_delivered_at:
        delivery.append({"url": "lastDelivered", "valueInstant": resources.instant(sub.last_delivered_at)})
    if sub.next_attempt_at:
        delivery.append({"url": "nextAttempt", "valueInstant": resources.instant(sub.next_attempt_at)})
    extensions: list[dict[str, Any]] = [{"url": DELIVERY_EXTENSION, "extension": delivery}]
    if secret is not None:
        extensions.append({"url": SECRET_EXTENSION, "valueString": secret})
    if sub.previous_secret_until and webhooks.previous_secret_live(sub, timezone.now()):
        extensions.append(
            {
                "url": PREVIOUS_SECRET_UNTIL_EXTENSION,
                "valueInstant": resources.instant(sub.previous_secret_until),
            }
        )
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "id": str(sub.pk),
        "meta": {"lastUpdated": resources.instant(sub.updated_at)},
        "extension": extensions,
        "status": FHIR_STATUS[WebhookSubscription.Status(sub.status)],
        "reason": sub.reason or DEFAULT_REASON,
        "criteria": sub.criteria,
        "channel": {"type": "rest-hook", "endpoint": sub.endpoint, "payload": webhooks.PAYLOAD_TYPE},
    }
    if sub.status == WebhookSubscription.Status.DEAD:
        resource["error"] = (
            f"Delivery stopped after {sub.failures} failed attempts (last: {sub.last_error}). "
            f"{pending} change(s) after feed cursor {sub.last_delivered_seq} were not "
            f"delivered: read them with GET $feed?cursor={sub.last_delivered_seq}, or fix the endpoint "
            "and PUT this Subscription with status requested to resume delivery from there."
        )
    elif sub.last_error:
        resource["error"] = f"Last attempt failed ({sub.last_error}); retrying."
    return resource


def _status(body: dict[str, Any], *, allowed: tuple[str, ...]) -> str:
    value = body.get("status", "requested")
    if value not in STATUS_CODES:
        raise bad(f"status must be one of {', '.join(STATUS_CODES)}.", "code-invalid")
    if value not in allowed:
        raise rule(f"status {value!r} cannot be set by a client here; use {' or '.join(allowed)}.")
    return str(value)


def _subscription_input(body: dict[str, Any], *, pk: str | None = None) -> dict[str, str]:
    """The parts of a Subscription we act on; refuses what we would otherwise silently ignore."""
    if body.get("resourceType") != "Subscription":
        raise bad(f"The body must be a Subscription (resourceType {body.get('resourceType')!r}).")
    if pk is not None and "id" in body and str(body["id"]) != pk:
        raise bad(f"The body's id ({body['id']!r}) is not the id in the URL ({pk}).")
    unsupported = sorted(set(body) - KNOWN_ELEMENTS)
    if unsupported:
        raise rule(f"Not supported on a Subscription here: {', '.join(unsupported)}.")
    criteria = body.get("criteria")
    if not isinstance(criteria, str) or not criteria:
        raise bad("criteria is required (Appointment).")
    if criteria not in webhooks.SUPPORTED_CRITERIA:
        raise rule(f"criteria {criteria!r} is not supported; use: {', '.join(webhooks.SUPPORTED_CRITERIA)}.")
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise bad("reason must be a string.")
    channel = body.get("channel")
    if not isinstance(channel, dict):
        raise bad("channel is required: {type: rest-hook, endpoint, payload: application/fhir+json}.")
    kind = channel.get("type")
    if kind not in CHANNEL_TYPES:
        raise bad(f"channel.type must be one of {', '.join(CHANNEL_TYPES)}.", "code-invalid")
    if kind != "rest-hook":
        raise rule("Only the rest-hook channel is supported.")
    if channel.get("payload") != webhooks.PAYLOAD_TYPE:
        raise rule(f"channel.payload must be {webhooks.PAYLOAD_TYPE}: notifications carry the changes.")
    if channel.get("header"):
        raise rule("channel.header is not supported: verify the X-RDV-Signature of each delivery instead.")
    endpoint = channel.get("endpoint")
    problem = webhooks.endpoint_problem(endpoint) if isinstance(endpoint, str) else None
    if not isinstance(endpoint, str) or problem:
        raise rule(problem or "channel.endpoint is required: an https URL.")
    return {"criteria": criteria, "reason": reason, "endpoint": endpoint}


class SubscriptionView(FhirView):
    permission_classes = [HasSubscriptionScope]

    @property
    def resource_type(self) -> str:
        return "Subscription"

    def subscription(self, pk: str) -> WebhookSubscription:
        sub = (
            webhooks.subscription_get_for_client(emr_client=self.emr_client, pk=int(pk))
            if pk.isdigit()
            else None
        )
        if sub is None:
            raise FhirError(404, "not-found", f"Subscription/{pk} is not known.")
        return sub


class SubscriptionTypeView(SubscriptionView):
    """``POST Subscription`` and ``GET Subscription[?status=…]``."""

    def get(self, request: Request) -> Response:
        unknown = set(request.query_params) - {"status", "_format"}
        if unknown:
            raise FhirError(400, "not-supported", f"Unknown parameter(s): {', '.join(sorted(unknown))}.")
        wanted = {
            code for value in request.query_params.getlist("status") for code in value.split(",") if code
        }
        if wanted - set(STATUS_CODES):
            raise bad(f"status must be among {', '.join(STATUS_CODES)}.", "code-invalid")
        base = fhir_base_url(request)
        rows = [
            subscription_resource(sub)
            for sub in webhooks.subscription_list_for_client(emr_client=self.emr_client)
            if not wanted or FHIR_STATUS[WebhookSubscription.Status(sub.status)] in wanted
        ]
        return Response(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(rows),
                "link": [{"relation": "self", "url": request.build_absolute_uri()}],
                "entry": [
                    {"fullUrl": f"{base}Subscription/{r['id']}", "resource": r, "search": {"mode": "match"}}
                    for r in rows
                ],
            }
        )

    def post(self, request: Request) -> Response:
        body = self.body()
        data = _subscription_input(body)
        _status(body, allowed=("requested", "active"))
        try:
            sub, secret = webhooks.subscription_create(emr_client=self.emr_client, **data)
        except webhooks.WebhookError as exc:
            raise rule(str(exc)) from exc
        location = request.build_absolute_uri(reverse("sync:subscription", args=[sub.pk]))
        return Response(subscription_resource(sub, secret=secret), status=201, headers={"Location": location})


class SubscriptionInstanceView(SubscriptionView):
    """``GET``, ``PUT`` (re-activate, turn off, change endpoint) and ``DELETE`` (off)."""

    def get(self, request: Request, pk: str) -> Response:
        return Response(subscription_resource(self.subscription(pk)))

    def put(self, request: Request, pk: str) -> Response:
        sub = self.subscription(pk)
        body = self.body()
        data = _subscription_input(body, pk=pk)
        status = _status(body, allowed=("requested", "active", "off"))
        if data["criteria"] != sub.criteria:
            raise rule("criteria cannot change; create another Subscription.")
        try:
            sub = webhooks.subscription_update(
                subscription=sub,
                active=status != "off",
                endpoint=data["endpoint"],
                reason=data["reason"],
            )
        except webhooks.WebhookError as exc:
            raise rule(str(exc)) from exc
        except feed.FeedExpired:
            raise FhirError(
                410,
                "expired",
                "The changes this subscription did not deliver are older than the change feed keeps; "
                "it cannot resume. Resync (see $feed), delete it and create a new one.",
            ) from None
        return Response(subscription_resource(sub))

    def delete(self, request: Request, pk: str) -> Response:
        webhooks.subscription_off(subscription=self.subscription(pk))
        return Response(status=204)


class SubscriptionRotateSecretView(SubscriptionView):
    """``POST Subscription/{id}/$rotate-secret``: a new signing secret, shown once in the answer.

    Body (optional): ``Parameters`` with ``overlap-hours`` (valueInteger, 0 to 720, default 24):
    how long the previous secret also signs deliveries (``X-RDV-Signature-Previous``).
    """

    def post(self, request: Request, pk: str) -> Response:
        sub = self.subscription(pk)
        overlap = webhooks.DEFAULT_ROTATION_OVERLAP
        body = request.data if isinstance(request.data, dict) and request.data else None
        if body is not None:
            if body.get("resourceType") != "Parameters":
                raise bad("The body, if any, must be a Parameters resource.")
            for param in body.get("parameter", []) if isinstance(body.get("parameter"), list) else [None]:
                if not isinstance(param, dict) or param.get("name") != "overlap-hours":
                    raise bad("Unknown parameter: use overlap-hours (valueInteger).")
                hours = param.get("valueInteger")
                if not isinstance(hours, int) or isinstance(hours, bool) or not 0 <= hours <= 720:
                    raise bad("overlap-hours must be a valueInteger from 0 to 720.")
                overlap = timedelta(hours=hours)
        sub, secret = webhooks.subscription_rotate_secret(subscription=sub, overlap=overlap)
        return Response(subscription_resource(sub, secret=secret))
