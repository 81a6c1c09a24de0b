"""The CapabilityStatement and the SMART configuration: built from ``fhir.search.RESOURCES``."""

from typing import Any

from django.conf import settings

from .fhir.resources import NAM_SYSTEM
from .fhir.search import CONTROL_PARAMS, RESOURCES
from .slot_ops import BUNDLE_MAX_ENTRIES
from .snapshots import SYNC_LIMIT as SNAPSHOT_SYNC_LIMIT

# The date of this statement's content; change it whenever the supported surface changes.
CAPABILITY_DATE = "2026-11-29"
SMART_OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"
# Interactions beyond read and search-type, per resource: what sync.views.TYPE_VIEWS and
# INSTANCE_VIEWS serve (tests/sync/test_metadata.py checks each one answers).
WRITE_INTERACTIONS = {
    "Slot": ["create", "update", "delete"],
    "Appointment": ["create", "update", "history-type"],
}
# The change feed's polling budget, machine-readable (valueInteger: minimum seconds between polls).
FEED_POLL_INTERVAL_EXTENSION = "https://rdv-sante.quebec/fhir/StructureDefinition/feed-min-poll-interval"


def capability_statement(*, base_url: str, token_url: str) -> dict[str, Any]:
    resources = []
    for resource in RESOURCES.values():
        params = [{"name": p.name, "type": p.type, "documentation": p.documentation} for p in resource.params]
        params.append(
            {
                "name": "_count",
                "type": "number",
                "documentation": "Page size; default 50, at most 500.",
            }
        )
        writes = WRITE_INTERACTIONS.get(resource.name, [])
        updates = [code for code in writes if code != "history-type"]
        entry: dict[str, Any] = {
            "type": resource.name,
            "interaction": [{"code": code} for code in ["read", "search-type", *writes]],
            "versioning": ("versioned-update" if updates else "versioned")
            if resource.versioned
            else "no-version",
            "readHistory": False,
            "updateCreate": False,
            "searchParam": params,
        }
        if resource.name == "Slot":
            # PUT Slot?identifier=system|value creates when nothing matches: the EMR's idempotent upsert.
            entry.update({"conditionalUpdate": True, "conditionalDelete": "not-supported"})
        if resource.includes:
            entry["searchInclude"] = list(resource.includes)
        if resource.name == "Task":
            entry["documentation"] = (
                "Agenda conflicts: a booked slot your snapshot removed or changed (the booking was "
                "kept). status requested = open, completed = resolved (businessStatus: keep, move or "
                "cancel); focus = the kept Appointment; input = the slot and what the snapshot said."
            )
            entry["operation"] = [
                {
                    "name": "resolve",
                    "definition": "https://rdv-sante.quebec/fhir/OperationDefinition/Task-resolve",
                    "documentation": (
                        "POST Task/{id}/$resolve (system/Task.write): Parameters with resolution "
                        "(valueCode keep, move or cancel) and, for move, slot (valueReference "
                        "Slot/{id}, a free slot of the clinic). The patient is told of a move or a "
                        "cancellation. 200 with the resolved Task; 409 when already resolved (by the "
                        "clinic's staff or another call) or when the slot is taken."
                    ),
                }
            ]
        if "history-type" in writes:
            entry["interaction"][-1]["documentation"] = (
                "The change feed of appointments: _since (an instant), _count; follow the next link "
                "(its cursor). Entries in feed order, oldest first, each with the resource as it is now."
            )
        resources.append(entry)
    resources.append(_patient_entry())
    resources += [_terminology_entry("CodeSystem"), _terminology_entry("ValueSet")]
    resources.append(_subscription_entry())
    interval = settings.SYNC_FEED_MIN_INTERVAL_SECONDS
    retention = settings.SYNC_FEED_RETENTION_DAYS
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": CAPABILITY_DATE,
        "publisher": "Rendez-vous santé Québec",
        "kind": "instance",
        "software": {"name": "Rendez-vous santé Québec: EMR synchronization API"},
        "implementation": {"description": "EMR synchronization API (fifth increment)", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["json", "application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Scoped to the clinics that chose the client's EMR product. Slots: create, update "
                    "(If-Match), conditional update by identifier, delete = withdraw. Appointments: read, "
                    "search, create (a desk booking; the patient by NAM in the body), status updates. "
                    f"Paging: follow the Bundle's next link (opaque {CONTROL_PARAMS[1]}). Unknown search "
                    "parameters are refused with 400. Change feed: GET $feed (no cursor: the current "
                    "head) then GET $feed?cursor=n&_count=m, and GET Appointment/_history?_since=; "
                    "every change your EMR did not make, for your clinics, each exactly once when you "
                    f"follow the next link. Polling budget: one feed poll per {interval} s per client "
                    "(429 with Retry-After beyond), except right after a full page. Events are kept "
                    f"{retention} days; an older cursor gets 410: resync. Webhooks: a Subscription "
                    "(rest-hook, criteria Appointment) receives the same history Bundles, HMAC-signed "
                    "(X-RDV-Signature), in feed order, retried with backoff. Patients: looked up by NAM "
                    "with POST Patient/_search only (the NAM in the form body, never in a URL). "
                    "Bundles: POST [base] with a transaction (all or nothing) or batch Bundle of Slot "
                    "writes. Agenda snapshots: POST Schedule/{id}/$snapshot."
                ),
                "extension": [{"url": FEED_POLL_INTERVAL_EXTENSION, "valueInteger": interval}],
                "interaction": [
                    {
                        "code": "transaction",
                        "documentation": (
                            "POST [base] with a Bundle of type transaction (system/Slot.write): entries "
                            "POST Slot, PUT Slot/{id}, PUT Slot?identifier=system|value, DELETE "
                            f"Slot/{{id}} (request.ifMatch honoured), at most {BUNDLE_MAX_ENTRIES}; all "
                            "or nothing, run DELETE, POST then PUT; a refusal is one OperationOutcome "
                            "naming the entry."
                        ),
                    },
                    {
                        "code": "batch",
                        "documentation": (
                            "POST [base] with a Bundle of type batch: the same entries, each applied on "
                            "its own, in order; always 200 with each entry's status (and outcome)."
                        ),
                    },
                ],
                "operation": [
                    {
                        "name": "feed",
                        "definition": "https://rdv-sante.quebec/fhir/OperationDefinition/feed",
                        "documentation": (
                            "GET $feed?cursor=n&_count=m (system/Appointment.read; Slot entries too "
                            "with system/Slot.read): a history Bundle of the changes after cursor n; "
                            "the next link and meta.extension feed-cursor give the cursor to continue."
                        ),
                    },
                    {
                        "name": "snapshot",
                        "definition": "https://rdv-sante.quebec/fhir/OperationDefinition/Schedule-snapshot",
                        "documentation": (
                            "POST Schedule/{id}/$snapshot (system/Slot.write): a Parameters resource "
                            "with start, end (instants), generation (greater than the last accepted one "
                            "for the schedule, else 409) and one slot parameter per Slot (resource), the "
                            "complete agenda of [start, end). New slots are created, changed free ones "
                            "updated, free ones that disappeared withdrawn; a booked slot removed or "
                            "changed is kept and recorded as a conflict. Every slot is validated as in "
                            "POST Slot, inside the window, without overlaps (422 naming the entries). "
                            f"Up to {SNAPSHOT_SYNC_LIMIT} slots: 200 with the counts (Parameters); more: "
                            "202 with Content-Location Schedule/{id}/$snapshot-status/{snapshot}, which "
                            "answers 202 until done, then 200 with the counts."
                        ),
                    },
                ],
                "security": {
                    "extension": [
                        {"url": SMART_OAUTH_URIS, "extension": [{"url": "token", "valueUri": token_url}]}
                    ],
                    "service": [{"coding": [{"system": SECURITY_SERVICE, "code": "OAuth"}]}],
                    "description": (
                        "OAuth 2.0 client credentials (RFC 6749 §4.4) at the token URL; send the token as "
                        "Authorization: Bearer. Scopes: system/<Type>.read and system/<Type>.write."
                    ),
                },
                "resource": resources,
            }
        ],
    }


def _patient_entry() -> dict[str, Any]:
    """Patient lookup: what ``sync.patient_views`` serves, exactly (search by NAM, POST only)."""
    return {
        "type": "Patient",
        "documentation": (
            "Lookup by NAM only, with POST Patient/_search and the form body identifier="
            + NAM_SYSTEM
            + "|<NAM> (system/Patient.read); a GET with parameters is refused (400), so that no NAM "
            "is ever in a URL. Finds only patients who have an appointment at your clinics. Answers "
            "a searchset of at most one minimal Patient (id, NAM, name, birth date); every Patient "
            "sent is audited."
        ),
        "interaction": [{"code": "search-type", "documentation": "POST Patient/_search only."}],
        "versioning": "no-version",
        "readHistory": False,
        "updateCreate": False,
        "searchParam": [
            {
                "name": "identifier",
                "type": "token",
                "documentation": f"{NAM_SYSTEM}|<NAM>, in the POST body only.",
            }
        ],
    }


def _terminology_entry(kind: str) -> dict[str, Any]:
    """Our vocabularies (sync.terminology_views): public, read-only."""
    return {
        "type": kind,
        "documentation": (
            "Our code systems (reason, modality, audience, cancel-reason, sync-conflict, "
            "sync-conflict-resolution, sync-conflict-input), each with a ValueSet of all its codes; "
            "fr-CA and en designations. Public: no token needed."
        ),
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "versioning": "no-version",
        "readHistory": False,
        "updateCreate": False,
        "searchParam": [
            {"name": "url", "type": "uri", "documentation": "The canonical URL; comma = or."},
            {"name": "_id", "type": "token", "documentation": "The id (e.g. reason); comma = or."},
        ],
    }


def _subscription_entry() -> dict[str, Any]:
    """Webhooks, as FHIR R4 Subscriptions: what ``sync.webhook_views`` serves, exactly."""
    max_failures = settings.SYNC_WEBHOOK_MAX_FAILURES
    return {
        "type": "Subscription",
        "documentation": (
            "Webhooks (system/Appointment.read). channel.type rest-hook only, channel.payload "
            "application/fhir+json, criteria Appointment only; channel.endpoint https. The create "
            "answer carries the signing secret once (extension subscription-secret). Each delivery "
            "is a history Bundle, as $feed answers, POSTed with X-RDV-Signature: sha256=<hex "
            "HMAC-SHA256 of the body>, X-RDV-Timestamp and X-RDV-Delivery; in feed order, the next "
            "one only after a 2xx; retried with exponential backoff (2 s to 1 h); after "
            f"{max_failures} failures in a row the status is error and the undelivered changes wait "
            "(extension subscription-delivery: cursor, pending); PUT status requested resumes. "
            "DELETE turns it off. POST Subscription/{id}/$rotate-secret (Parameters overlap-hours, "
            "default 24): a new secret, shown once; during the overlap each delivery also carries "
            "X-RDV-Signature-Previous, signed with the old one."
        ),
        "interaction": [{"code": code} for code in ["read", "search-type", "create", "update", "delete"]],
        "operation": [
            {
                "name": "rotate-secret",
                "definition": "https://rdv-sante.quebec/fhir/OperationDefinition/Subscription-rotate-secret",
                "documentation": (
                    "POST Subscription/{id}/$rotate-secret: a new signing secret (overlap-hours 0-720, "
                    "default 24, during which X-RDV-Signature-Previous carries the old one's)."
                ),
            }
        ],
        "versioning": "no-version",
        "readHistory": False,
        "updateCreate": False,
        "searchParam": [
            {
                "name": "status",
                "type": "token",
                "documentation": "requested, active, error, off; comma = or.",
            }
        ],
    }


def smart_configuration(*, token_url: str) -> dict[str, Any]:
    return {
        "token_endpoint": token_url,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": list(settings.SYNC_SCOPES),
        "capabilities": ["client-confidential-symmetric"],
    }
