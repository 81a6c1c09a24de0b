"""An OpenAPI 3 description of the FHIR API's REST interactions, served at ``/fhir/r4/openapi.json``.

Built from ``sync.fhir.search.RESOURCES`` (like the CapabilityStatement) so that it cannot list a
search parameter the server refuses, or miss one it applies; kept apart from the citizen API's
``/api/schema/`` (docs/sync-api.md says why). FHIR's own description stays the CapabilityStatement
(``GET metadata``); this one exists for generic HTTP tooling and for schemathesis
(tests/sync/test_fhir_schemathesis.py). Described: every route of ``sync.urls`` that does something
(search by GET and POST ``_search``, read, the Slot and Appointment writes, transaction and batch
Bundles, ``$feed`` and ``Appointment/_history``, Subscription and ``$rotate-secret``, ``$snapshot`` and
its status, ``Task/{id}/$resolve``, Patient lookup, the vocabularies, ``metadata``, the SMART
configuration and this document). Left out: the routes that only refuse (``GET [type]/_search``,
``GET Patient``) and the catch-all 404. tests/sync/test_openapi_routes.py compares the described
operations with the routes and with the CapabilityStatement.
"""

from typing import Any

from django.conf import settings
from django.urls import reverse
from rest_framework.request import Request
from rest_framework.response import Response

from . import views
from .feed_views import MAX_COUNT as FEED_MAX_COUNT
from .fhir.renderers import FHIR_JSON, PlainJSONRenderer
from .fhir.resources import NAM_SYSTEM
from .fhir.search import CONTROL_PARAMS, RESOURCES, ResourceType
from .slot_ops import BUNDLE_MAX_ENTRIES
from .webhook_views import REQUIRED_SCOPE as SUBSCRIPTION_SCOPE

SCHEME = "emrClientCredentials"


# Our vocabularies (sync.terminology_views): public, read-only, searched by url or _id.
TERMINOLOGY = ("CodeSystem", "ValueSet")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    """FHIR JSON, and plain JSON (the same body) for a client that asks for it (docs/sync-api.md)."""
    return {FHIR_JSON: {"schema": schema}, "application/json": {"schema": schema}}


def _resource_schema(resource_type: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["resourceType"],
        "properties": {"resourceType": {"type": "string", "enum": [resource_type]}, "id": {"type": "string"}},
        "additionalProperties": True,
    }


_REFERENCE = {"type": "object", "properties": {"reference": {"type": "string"}}, "additionalProperties": True}
_CODEABLE = {
    "type": "object",
    "properties": {
        "coding": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"system": {"type": "string"}, "code": {"type": "string"}},
            },
        }
    },
}
_IDENTIFIERS = {
    "type": "array",
    "items": {"type": "object", "properties": {"system": {"type": "string"}, "value": {"type": "string"}}},
}

SCHEMAS: dict[str, Any] = {
    "OperationOutcome": {
        "type": "object",
        "required": ["resourceType", "issue"],
        "properties": {
            "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
            "issue": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["severity", "code"],
                    "properties": {
                        "severity": {"type": "string", "enum": ["fatal", "error", "warning", "information"]},
                        "code": {"type": "string"},
                        "diagnostics": {"type": "string"},
                    },
                },
            },
        },
    },
    "Bundle": {
        "type": "object",
        "required": ["resourceType", "type", "link", "entry"],
        "properties": {
            "resourceType": {"type": "string", "enum": ["Bundle"]},
            "type": {"type": "string", "enum": ["searchset"]},
            "total": {"type": "integer", "minimum": 0},
            "link": {"type": "array", "items": {"type": "object", "required": ["relation", "url"]}},
            "entry": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["fullUrl", "resource"],
                    "properties": {"resource": _ref("Resource")},
                },
            },
        },
    },
    "Resource": {
        "type": "object",
        "required": ["resourceType"],
        "properties": {"resourceType": {"type": "string"}},
        "additionalProperties": True,
    },
    "CapabilityStatement": _resource_schema("CapabilityStatement"),
    # Request bodies: the fields the server reads (sync.fhir.writes); anything else is ignored.
    "SlotInput": {
        "type": "object",
        "required": ["resourceType", "schedule", "status", "start", "end"],
        "properties": {
            "resourceType": {"type": "string", "enum": ["Slot"]},
            "schedule": _REFERENCE,
            "status": {"type": "string", "enum": ["free", "busy", "busy-unavailable"]},
            "start": {"type": "string", "format": "date-time"},
            "end": {"type": "string", "format": "date-time"},
            "serviceType": {"type": "array", "items": _CODEABLE},
            "appointmentType": _CODEABLE,
            "extension": {"type": "array", "items": {"type": "object"}},
            "identifier": _IDENTIFIERS,
        },
    },
    "AppointmentInput": {
        "type": "object",
        "required": ["resourceType", "status"],
        "properties": {
            "resourceType": {"type": "string", "enum": ["Appointment"]},
            "status": {
                "type": "string",
                "enum": ["booked", "arrived", "fulfilled", "noshow", "cancelled"],
            },
            "slot": {"type": "array", "items": _REFERENCE},
            "start": {"type": "string", "format": "date-time"},
            "end": {"type": "string", "format": "date-time"},
            "appointmentType": _CODEABLE,
            "cancelationReason": _CODEABLE,
            "participant": {"type": "array", "items": {"type": "object"}},
            "identifier": _IDENTIFIERS,
        },
    },
}
_PARAMETER = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}},
    "additionalProperties": True,
}
_ENTRY_RESPONSE = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"type": "string"}, "outcome": _ref("OperationOutcome")},
}
SCHEMAS.update(
    {
        # What the operations answer.
        "HistoryBundle": {
            "type": "object",
            "required": ["resourceType", "type", "link", "entry"],
            "properties": {
                "resourceType": {"type": "string", "enum": ["Bundle"]},
                "type": {"type": "string", "enum": ["history"]},
                "link": {"type": "array", "items": {"type": "object", "required": ["relation", "url"]}},
                "entry": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["request", "response"],
                        "properties": {"resource": _ref("Resource"), "response": _ENTRY_RESPONSE},
                    },
                },
            },
        },
        "BundleResponse": {
            "type": "object",
            "required": ["resourceType", "type", "entry"],
            "properties": {
                "resourceType": {"type": "string", "enum": ["Bundle"]},
                "type": {"type": "string", "enum": ["transaction-response", "batch-response"]},
                "entry": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["response"],
                        "properties": {"resource": _ref("Slot"), "response": _ENTRY_RESPONSE},
                    },
                },
            },
        },
        "ParametersOutput": {
            "type": "object",
            "required": ["resourceType", "parameter"],
            "properties": {
                "resourceType": {"type": "string", "enum": ["Parameters"]},
                "parameter": {"type": "array", "items": _PARAMETER},
            },
        },
        # What they take.
        "BundleInput": {
            "type": "object",
            "required": ["resourceType", "type"],
            "properties": {
                "resourceType": {"type": "string", "enum": ["Bundle"]},
                "type": {"type": "string", "enum": ["transaction", "batch"]},
                "entry": {
                    "type": "array",
                    "maxItems": BUNDLE_MAX_ENTRIES,
                    "items": {
                        "type": "object",
                        "required": ["request"],
                        "properties": {
                            "request": {
                                "type": "object",
                                "required": ["method", "url"],
                                "properties": {
                                    "method": {"type": "string", "enum": ["POST", "PUT", "DELETE"]},
                                    "url": {
                                        "type": "string",
                                        "description": "Slot, Slot/{id} or Slot?identifier=system|value.",
                                    },
                                    "ifMatch": {"type": "string"},
                                },
                            },
                            "resource": _ref("SlotInput"),
                        },
                    },
                },
            },
        },
        "SubscriptionInput": {
            "type": "object",
            "required": ["resourceType", "criteria", "channel"],
            "properties": {
                "resourceType": {"type": "string", "enum": ["Subscription"]},
                "id": {"type": "string"},
                "status": {"type": "string", "enum": ["requested", "active", "off"]},
                "reason": {"type": "string"},
                "criteria": {"type": "string", "enum": ["Appointment"]},
                "channel": {
                    "type": "object",
                    "required": ["type", "endpoint", "payload"],
                    "properties": {
                        "type": {"type": "string", "enum": ["rest-hook"]},
                        "endpoint": {"type": "string", "format": "uri"},
                        "payload": {"type": "string", "enum": [FHIR_JSON]},
                    },
                },
            },
        },
        "RotateSecretInput": {
            "type": "object",
            "required": ["resourceType"],
            "properties": {
                "resourceType": {"type": "string", "enum": ["Parameters"]},
                "parameter": {
                    "type": "array",
                    "maxItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "valueInteger"],
                        "properties": {
                            "name": {"type": "string", "enum": ["overlap-hours"]},
                            "valueInteger": {"type": "integer", "minimum": 0, "maximum": 720},
                        },
                    },
                },
            },
        },
        "SnapshotInput": {
            "type": "object",
            "required": ["resourceType", "parameter"],
            "properties": {
                "resourceType": {"type": "string", "enum": ["Parameters"]},
                "parameter": {
                    "type": "array",
                    "description": "start, end (valueInstant), generation (valueInteger) and one slot "
                    "(resource: a Slot as for POST Slot) per slot of the window.",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string", "enum": ["start", "end", "generation", "slot"]},
                            "valueInstant": {"type": "string", "format": "date-time"},
                            "valueInteger": {"type": "integer", "minimum": 0},
                            "valueString": {"type": "string", "pattern": "^[0-9]{1,19}$"},
                            "resource": _ref("SlotInput"),
                        },
                    },
                },
            },
        },
        "ResolveInput": {
            "type": "object",
            "required": ["resourceType", "parameter"],
            "properties": {
                "resourceType": {"type": "string", "enum": ["Parameters"]},
                "parameter": {
                    "type": "array",
                    "description": "resolution (valueCode keep, move or cancel) and, for move only, "
                    "slot (valueReference Slot/{id}).",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string", "enum": ["resolution", "slot"]},
                            "valueCode": {"type": "string", "enum": ["keep", "move", "cancel"]},
                            "valueReference": _REFERENCE,
                        },
                    },
                },
            },
        },
        "PatientSearchForm": {
            "type": "object",
            "required": ["identifier"],
            "properties": {
                "identifier": {
                    "type": "string",
                    "description": f"{NAM_SYSTEM}|<NAM> (4 letters and 8 digits); in this body, never a URL.",
                }
            },
        },
    }
)
for _name in (
    {r.name for r in RESOURCES.values()} | set(TERMINOLOGY) | {"Parameters", "Subscription", "Patient"}
):
    SCHEMAS[_name] = _resource_schema(_name)

ERRORS = {
    "4XX": {"description": "An OperationOutcome saying why.", "content": _content(_ref("OperationOutcome"))}
}
BUSY = {
    "503": {
        "description": "The slot is being written by someone else: retry after Retry-After seconds.",
        "content": _content(_ref("OperationOutcome")),
    }
}
_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9\\-.]{1,64}$"},
}
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": 'W/"<version>" from the ETag: refused with 412 if the resource changed since.',
}


def _security(*scopes: str) -> list[dict[str, list[str]]]:
    return [{SCHEME: list(scopes)}]


def _one(resource: ResourceType, description: str) -> dict[str, Any]:
    return {"description": description, "content": _content(_ref(resource.name))}


def _search_parameters(resource: ResourceType) -> list[dict[str, Any]]:
    params = [
        {
            "name": p.name,
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": f"FHIR {p.type} parameter. {p.documentation}",
        }
        for p in resource.params
    ]
    control = {
        "_count": {"type": "string", "pattern": "^[0-9]+$"},
        "_cursor": {"type": "string"},
        "_format": {"type": "string", "enum": ["json", FHIR_JSON]},
    }
    params += [
        {"name": name, "in": "query", "required": False, "schema": control[name]} for name in CONTROL_PARAMS
    ]
    if resource.includes:
        params.append(
            {
                "name": "_include",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "enum": list(resource.includes)},
            }
        )
    return params


def _numeric(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    }


def _query(
    name: str, schema: dict[str, Any], description: str = "", *, required: bool = False
) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "query", "required": required, "schema": schema}
    if description:
        param["description"] = description
    return param


_FORMAT = _query("_format", {"type": "string", "enum": ["json", FHIR_JSON]})
_FEED_COUNT = _query(
    "_count",
    {"type": "string", "pattern": "^[0-9]+$"},
    f"Entries per page: 1 to {FEED_MAX_COUNT}, default 100.",
)
_FEED_CURSOR = _query("cursor", {"type": "string", "pattern": "^[0-9]+$"}, "A cursor this server gave.")


def _public_json(operation_id: str, summary: str) -> dict[str, Any]:
    """A public document in plain JSON (not a FHIR resource)."""
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "security": [],
            "responses": {
                "200": {
                    "description": summary,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    }


def _search_post(resource: ResourceType) -> dict[str, Any]:
    """``POST [type]/_search``: the same parameters as the GET, in a form body."""
    properties = {p["name"]: p["schema"] for p in _search_parameters(resource) if p["name"] != "_format"}
    return {
        "post": {
            "operationId": f"search{resource.name}Post",
            "summary": f"Search {resource.name} with the parameters in a form body.",
            "parameters": [_FORMAT],
            "requestBody": {
                "required": False,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {"type": "object", "properties": properties}
                    }
                },
            },
            "security": _security(f"system/{resource.name}.read"),
            "responses": {
                "200": {"description": "A searchset Bundle.", "content": _content(_ref("Bundle"))},
                **ERRORS,
            },
        }
    }


def _operation_paths() -> dict[str, Any]:
    """Bundles, the change feed, webhooks, snapshots and Patient lookup (docs/sync-api.md)."""
    history = {
        "description": "A history Bundle, oldest change first.",
        "content": _content(_ref("HistoryBundle")),
    }
    summary = {"description": "The snapshot's counts.", "content": _content(_ref("ParametersOutput"))}
    accepted = {
        "description": "Received: poll the status URL in Content-Location.",
        "headers": {"Content-Location": {"schema": {"type": "string"}}},
        "content": _content(_ref("ParametersOutput")),
    }
    subscription = {"description": "The subscription.", "content": _content(_ref("Subscription"))}
    sub_security = _security(SUBSCRIPTION_SCOPE)
    return {
        "/": {
            "post": {
                "operationId": "bundle",
                "summary": f"A transaction or batch Bundle of Slot writes (at most {BUNDLE_MAX_ENTRIES}).",
                "requestBody": {"required": True, "content": _content(_ref("BundleInput"))},
                "security": _security("system/Slot.write"),
                "responses": {
                    "200": {
                        "description": "transaction-response, or batch-response (each entry's own status).",
                        "content": _content(_ref("BundleResponse")),
                    },
                    **ERRORS,
                    **BUSY,
                },
            }
        },
        "/$feed": {
            "get": {
                "operationId": "feed",
                "summary": "The change feed after a cursor (no cursor: the current head, no entries).",
                "parameters": [_FEED_CURSOR, _FEED_COUNT, _FORMAT],
                "security": _security("system/Appointment.read"),
                "responses": {"200": history, **ERRORS},
            }
        },
        "/Appointment/_history": {
            "get": {
                "operationId": "historyAppointment",
                "summary": "The appointments changed since an instant; follow the next link (its cursor).",
                "parameters": [
                    _query("_since", {"type": "string"}, "An instant with its offset."),
                    _FEED_CURSOR,
                    _FEED_COUNT,
                    _FORMAT,
                ],
                "security": _security("system/Appointment.read"),
                "responses": {"200": history, **ERRORS},
            }
        },
        "/Subscription": {
            "get": {
                "operationId": "searchSubscription",
                "summary": "Your webhook subscriptions.",
                "parameters": [
                    _query("status", {"type": "string"}, "requested, active, error, off; comma = or."),
                    _FORMAT,
                ],
                "security": sub_security,
                "responses": {
                    "200": {"description": "A searchset Bundle.", "content": _content(_ref("Bundle"))},
                    **ERRORS,
                },
            },
            "post": {
                "operationId": "createSubscription",
                "summary": "Subscribe (rest-hook); the answer carries the signing secret, once.",
                "requestBody": {"required": True, "content": _content(_ref("SubscriptionInput"))},
                "security": sub_security,
                "responses": {
                    "201": {"description": "Created.", "content": _content(_ref("Subscription"))},
                    **ERRORS,
                },
            },
        },
        "/Subscription/{id}": {
            "get": {
                "operationId": "readSubscription",
                "summary": "One of your subscriptions and its delivery state.",
                "parameters": [_ID],
                "security": sub_security,
                "responses": {"200": subscription, **ERRORS},
            },
            "put": {
                "operationId": "updateSubscription",
                "summary": "Re-activate (requested), stop (off), or change the endpoint or reason.",
                "parameters": [_ID],
                "requestBody": {"required": True, "content": _content(_ref("SubscriptionInput"))},
                "security": sub_security,
                "responses": {"200": subscription, **ERRORS},
            },
            "delete": {
                "operationId": "deleteSubscription",
                "summary": "Off (kept for history).",
                "parameters": [_ID],
                "security": sub_security,
                "responses": {"204": {"description": "Off."}, **ERRORS},
            },
        },
        "/Subscription/{id}/$rotate-secret": {
            "post": {
                "operationId": "rotateSubscriptionSecret",
                "summary": "A new signing secret, shown once; the old one also signs during overlap-hours.",
                "parameters": [_numeric("id")],
                "requestBody": {"required": False, "content": _content(_ref("RotateSecretInput"))},
                "security": sub_security,
                "responses": {"200": subscription, **ERRORS},
            }
        },
        "/Schedule/{id}/$snapshot": {
            "post": {
                "operationId": "snapshotSchedule",
                "summary": "The complete agenda of a schedule over a window, reconciled with ours.",
                "parameters": [_ID],
                "requestBody": {"required": True, "content": _content(_ref("SnapshotInput"))},
                "security": _security("system/Slot.write"),
                "responses": {"200": summary, "202": accepted, **ERRORS, **BUSY},
            }
        },
        "/Schedule/{id}/$snapshot-status/{snapshot}": {
            "get": {
                "operationId": "snapshotStatus",
                "summary": "A snapshot's state: 202 until done, then 200 with its counts.",
                "parameters": [_ID, _numeric("snapshot")],
                "security": _security("system/Slot.read"),
                "responses": {"200": summary, "202": accepted, **ERRORS},
            }
        },
        "/Patient/_search": {
            "post": {
                "operationId": "searchPatient",
                "summary": "Look a patient up by NAM, in the form body only (never in the URL).",
                "requestBody": {
                    "required": True,
                    "content": {"application/x-www-form-urlencoded": {"schema": _ref("PatientSearchForm")}},
                },
                "security": _security("system/Patient.read"),
                "responses": {
                    "200": {
                        "description": "A searchset of at most one Patient.",
                        "content": _content(_ref("Bundle")),
                    },
                    **ERRORS,
                },
            }
        },
        "/.well-known/smart-configuration": _public_json(
            "smartConfiguration", "The SMART configuration (token endpoint, scopes)."
        ),
        "/openapi.json": _public_json("openapi", "This document."),
    }


def _paths() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/metadata": {
            "get": {
                "operationId": "metadata",
                "summary": "The CapabilityStatement (no authentication).",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The CapabilityStatement.",
                        "content": _content(_ref("CapabilityStatement")),
                    },
                    **ERRORS,
                },
            }
        }
    }
    for resource in RESOURCES.values():
        name = resource.name
        read = f"system/{name}.read"
        write = f"system/{name}.write"
        type_path: dict[str, Any] = {
            "get": {
                "operationId": f"search{name}",
                "summary": f"Search {name} (a searchset Bundle; unknown parameters are refused).",
                "parameters": _search_parameters(resource),
                "security": _security(read),
                "responses": {
                    "200": {"description": "A searchset Bundle.", "content": _content(_ref("Bundle"))},
                    **ERRORS,
                },
            }
        }
        instance_path: dict[str, Any] = {
            "get": {
                "operationId": f"read{name}",
                "summary": f"Read one {name} of your clinics (404 outside them).",
                "parameters": [_ID],
                "security": _security(read),
                "responses": {"200": _one(resource, f"The {name}."), **ERRORS},
            }
        }
        if name == "Slot":
            type_path["post"] = {
                "operationId": "createSlot",
                "summary": "Publish a slot (201), or find the one with the same identifier (200).",
                "requestBody": {"required": True, "content": _content(_ref("SlotInput"))},
                "security": _security(write),
                "responses": {
                    "200": _one(resource, "Already published."),
                    "201": _one(resource, "Published."),
                    **ERRORS,
                },
            }
            instance_path["put"] = {
                "operationId": "updateSlot",
                "summary": "Update a free slot.",
                "parameters": [_ID, _IF_MATCH],
                "requestBody": {"required": True, "content": _content(_ref("SlotInput"))},
                "security": _security(write),
                "responses": {"200": _one(resource, "Updated."), **ERRORS, **BUSY},
            }
            type_path["put"] = {
                "operationId": "upsertSlot",
                "summary": "The idempotent upsert by identifier: created (201), updated (200), several: 412.",
                "parameters": [
                    _query(
                        "identifier",
                        {"type": "string"},
                        "system|value of the EMR's identifier.",
                        required=True,
                    )
                ],
                "requestBody": {"required": True, "content": _content(_ref("SlotInput"))},
                "security": _security(write),
                "responses": {
                    "200": _one(resource, "Updated, or unchanged."),
                    "201": _one(resource, "Created."),
                    **ERRORS,
                    **BUSY,
                },
            }
            instance_path["delete"] = {
                "operationId": "withdrawSlot",
                "summary": "Withdraw a slot (later reads answer 410).",
                "parameters": [_ID, _IF_MATCH],
                "security": _security(write),
                "responses": {"204": {"description": "Withdrawn."}, **ERRORS, **BUSY},
            }
        if name == "Appointment":
            type_path["post"] = {
                "operationId": "bookAppointment",
                "summary": "Book a slot for a patient identified by NAM (a desk booking).",
                "requestBody": {"required": True, "content": _content(_ref("AppointmentInput"))},
                "security": _security(write),
                "responses": {
                    "200": _one(resource, "A retry: the first booking."),
                    "201": _one(resource, "Booked."),
                    **ERRORS,
                    **BUSY,
                },
            }
            instance_path["put"] = {
                "operationId": "updateAppointment",
                "summary": "Arrived, fulfilled, noshow or cancelled by the clinic.",
                "parameters": [_ID, _IF_MATCH],
                "requestBody": {"required": True, "content": _content(_ref("AppointmentInput"))},
                "security": _security(write),
                "responses": {"200": _one(resource, "Updated."), **ERRORS, **BUSY},
            }
        if name == "Task":
            paths["/Task/{id}/$resolve"] = {
                "post": {
                    "operationId": "resolveTask",
                    "summary": "Resolve an agenda conflict: keep, move (with a slot) or cancel.",
                    "parameters": [_numeric("id")],
                    "requestBody": {"required": True, "content": _content(_ref("ResolveInput"))},
                    "security": _security(write),
                    "responses": {"200": _one(resource, "The resolved Task."), **ERRORS, **BUSY},
                }
            }
        paths[f"/{name}"] = type_path
        paths[f"/{name}/_search"] = _search_post(resource)
        paths[f"/{name}/{{id}}"] = instance_path
    for kind in TERMINOLOGY:
        term_params = [
            {"name": "url", "in": "query", "required": False, "schema": {"type": "string"}},
            {"name": "_id", "in": "query", "required": False, "schema": {"type": "string"}},
        ]
        paths[f"/{kind}"] = {
            "get": {
                "operationId": f"search{kind}",
                "summary": f"Our {kind} resources (public, no token).",
                "parameters": term_params,
                "security": [],
                "responses": {
                    "200": {"description": "A searchset Bundle.", "content": _content(_ref("Bundle"))},
                    **ERRORS,
                },
            }
        }
        paths[f"/{kind}/{{id}}"] = {
            "get": {
                "operationId": f"read{kind}",
                "summary": f"Read one {kind} (public, no token).",
                "parameters": [_ID],
                "security": [],
                "responses": {
                    "200": {"description": f"The {kind}.", "content": _content(_ref(kind))},
                    **ERRORS,
                },
            }
        }
    paths.update(_operation_paths())
    return paths


def openapi_document(*, base_url: str, token_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Rendez-vous santé Québec: FHIR R4 API for EMRs",
            "version": "1.0.0",
            "description": (
                "REST interactions of the FHIR API; the CapabilityStatement (GET metadata) is the FHIR "
                "description. Every error is an OperationOutcome."
            ),
        },
        "servers": [{"url": base_url.rstrip("/")}],
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                SCHEME: {
                    "type": "oauth2",
                    "flows": {
                        "clientCredentials": {"tokenUrl": token_url, "scopes": dict(settings.SYNC_SCOPES)}
                    },
                }
            },
        },
        "security": _security(),
    }


class OpenApiView(views.PublicFhirView):
    """``GET openapi.json``: public, as the CapabilityStatement is."""

    renderer_classes = [PlainJSONRenderer]

    def get(self, request: Request) -> Response:
        return Response(
            openapi_document(
                base_url=views.fhir_base_url(request),
                token_url=request.build_absolute_uri(reverse("oauth-token")),
            )
        )
