"""The CapabilityStatement and the SMART configuration: built from ``fhir.search.RESOURCES``."""

from typing import Any

from django.conf import settings

from .fhir.search import CONTROL_PARAMS, RESOURCES

# The date of this statement's content; change it whenever the supported surface changes.
CAPABILITY_DATE = "2026-11-26"
SMART_OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"
# Interactions beyond read and search-type, per resource: what sync.views.TYPE_VIEWS and
# INSTANCE_VIEWS serve (tests/sync/test_metadata.py checks each one answers).
WRITE_INTERACTIONS = {
    "Slot": ["create", "update", "delete"],
    "Appointment": ["create", "update"],
}


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
        entry: dict[str, Any] = {
            "type": resource.name,
            "interaction": [{"code": code} for code in ["read", "search-type", *writes]],
            "versioning": ("versioned-update" if writes else "versioned")
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
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": CAPABILITY_DATE,
        "publisher": "Rendez-vous santé Québec",
        "kind": "instance",
        "software": {"name": "Rendez-vous santé Québec: EMR synchronization API"},
        "implementation": {"description": "EMR synchronization API (second increment)", "url": base_url},
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
                    "parameters are refused with 400. Patient lookup, Bundles, agenda snapshots and the "
                    "change feed are not available yet (see docs/sync-api.md)."
                ),
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


def smart_configuration(*, token_url: str) -> dict[str, Any]:
    return {
        "token_endpoint": token_url,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": list(settings.SYNC_SCOPES),
        "capabilities": ["client-confidential-symmetric"],
    }
