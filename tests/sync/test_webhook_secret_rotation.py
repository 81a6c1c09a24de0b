"""Webhook signing secret rotation: POST Subscription/{id}/$rotate-secret, with an overlap.

During the overlap each delivery carries X-RDV-Signature (new secret) and X-RDV-Signature-Previous
(the secret it replaced), so the EMR's receiver can switch at its own pace; after it, only the new.
Deliveries go to a real HTTP server on 127.0.0.1 (tests/sync/test_webhooks.py's Receiver).
"""

import hashlib
import hmac
from datetime import timedelta

import pytest
from django.utils import timezone

from sync import webhooks
from sync.models import WebhookSubscription

from .conftest import FHIR, get_token
from .test_webhooks import (  # noqa: F401 - fixtures
    SECRET_URL,
    _loopback_endpoints_and_no_poll_budget,
    book,
    post_json,
    receiver,
    subscribe,
)

UNTIL_URL = "https://rdv-sante.quebec/fhir/StructureDefinition/subscription-previous-secret-until"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def rotate(fhir, pk, hours=None):
    body = (
        {"resourceType": "Parameters", "parameter": [{"name": "overlap-hours", "valueInteger": hours}]}
        if hours is not None
        else {"resourceType": "Parameters", "parameter": []}
    )
    return post_json(fhir, f"{FHIR}Subscription/{pk}/$rotate-secret", body)


def deliver_one(persona, receiver, now=None):  # noqa: F811
    book(persona.role)
    before = len(receiver.received)
    from sync.feed import feed_relay

    feed_relay()
    webhooks.webhooks_deliver(now=now)
    assert len(receiver.received) == before + 1
    return receiver.received[-1]


def test_both_signatures_during_the_overlap_then_only_the_new_one(fhir_a, persona_a, receiver):  # noqa: F811
    pk, old = subscribe(fhir_a, receiver.url)
    response = rotate(fhir_a, pk, hours=2)
    assert response.status_code == 200, response.json()
    resource = response.json()
    new = next(e["valueString"] for e in resource["extension"] if e["url"] == SECRET_URL)
    assert new != old
    until = next(e["valueInstant"] for e in resource["extension"] if e["url"] == UNTIL_URL)
    sub = WebhookSubscription.objects.get(pk=pk)
    assert abs((sub.previous_secret_until - timezone.now()) - timedelta(hours=2)) < timedelta(minutes=1)
    assert until.endswith("Z")
    # The secret is shown once: a read does not carry it (the overlap's end, yes).
    read = fhir_a.get(f"{FHIR}Subscription/{pk}").json()
    assert not any(e["url"] == SECRET_URL for e in read["extension"])
    assert any(e["url"] == UNTIL_URL for e in read["extension"])

    during = deliver_one(persona_a, receiver)
    assert hmac.compare_digest(during["headers"]["X-RDV-Signature"], sign(new, during["body"]))
    assert hmac.compare_digest(during["headers"]["X-RDV-Signature-Previous"], sign(old, during["body"]))

    after = deliver_one(persona_a, receiver, now=timezone.now() + timedelta(hours=3))
    assert hmac.compare_digest(after["headers"]["X-RDV-Signature"], sign(new, after["body"]))
    assert "X-RDV-Signature-Previous" not in after["headers"]
    WebhookSubscription.objects.filter(pk=pk).update(
        previous_secret_until=timezone.now() - timedelta(seconds=1)
    )
    assert not any(e["url"] == UNTIL_URL for e in fhir_a.get(f"{FHIR}Subscription/{pk}").json()["extension"])


def test_overlap_zero_drops_the_old_secret_at_once_and_the_default_is_a_day(
    fhir_a,
    persona_a,
    receiver,  # noqa: F811
):
    pk, _old = subscribe(fhir_a, receiver.url)
    assert rotate(fhir_a, pk).status_code == 200
    sub = WebhookSubscription.objects.get(pk=pk)
    assert abs((sub.previous_secret_until - timezone.now()) - timedelta(hours=24)) < timedelta(minutes=1)
    second = rotate(fhir_a, pk, hours=0)
    new = next(e["valueString"] for e in second.json()["extension"] if e["url"] == SECRET_URL)
    request = deliver_one(persona_a, receiver)
    assert hmac.compare_digest(request["headers"]["X-RDV-Signature"], sign(new, request["body"]))
    assert "X-RDV-Signature-Previous" not in request["headers"]
    sub.refresh_from_db()
    assert (sub.previous_secret, sub.previous_secret_until) == ("", None)


@pytest.mark.parametrize(
    "body",
    [
        {"resourceType": "Parameters", "parameter": [{"name": "overlap-hours", "valueInteger": 721}]},
        {"resourceType": "Parameters", "parameter": [{"name": "overlap-hours", "valueInteger": -1}]},
        {"resourceType": "Parameters", "parameter": [{"name": "overlap-hours", "valueString": "2"}]},
        {"resourceType": "Parameters", "parameter": [{"name": "overlap", "valueInteger": 2}]},
        {"resourceType": "Subscription"},
    ],
)
def test_bad_rotation_bodies_are_400_and_change_nothing(fhir_a, receiver, body):  # noqa: F811
    pk, old = subscribe(fhir_a, receiver.url)
    response = post_json(fhir_a, f"{FHIR}Subscription/{pk}/$rotate-secret", body)
    assert response.status_code == 400 and response.json()["resourceType"] == "OperationOutcome"
    assert WebhookSubscription.objects.get(pk=pk).secret == old


def test_another_client_cannot_rotate_and_the_scope_is_needed(fhir_a, client, persona_a, persona_b, receiver):  # noqa: F811
    pk, old = subscribe(fhir_a, receiver.url)
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {get_token(client, persona_b)}"
    assert rotate(client, pk).status_code == 404
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {get_token(client, persona_a, 'system/Slot.read')}"
    assert rotate(client, pk).status_code == 403
    assert WebhookSubscription.objects.get(pk=pk).secret == old
