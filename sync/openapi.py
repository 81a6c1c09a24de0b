"""An OpenAPI 3 description of the FHIR API's REST interactions, served at ``/fhir/r4/openapi.json``.

Built from ``sync.fhir.search.RESOURCES`` (like the CapabilityStatement) so that it cannot list a
search parameter the server refuses, or miss one it applies; kept apart from the citizen API's
``/api/schema/`` (docs/sync-api.md says why). FHIR's own description stays the CapabilityStatement
(``GET metadata``); this one exists for generic HTTP tooling and for schemathesis
(tests/sync/test_fhir_schemathesis.py). Described: search, read, the Slot and Appointment writes and
``metadata``. Not (yet) described: Bundles, ``$feed``, ``_history``, Subscription, ``$snapshot`` and
Patient lookup.
"""

from typing import Any

from django.conf import settings
from django.urls import reverse
from rest_framework.request import Request
from rest_framework.response import Response

from . import views
from .fhir.renderers import FHIR_JSON, PlainJSONRenderer
from .fhir.search import CONTROL_PARAMS, RESOURCES, ResourceType

SCHEME = "emrClientCredentials"


# Our vocabularies (sync.terminology_views): public, read-only, searched by url or _id.
TERMINOLOGY = ("CodeSystem", "ValueSet")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {FHIR_JSON: {"schema": schema}}


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
for _name in {r.name for r in RESOURCES.values()} | set(TERMINOLOGY) | {"Parameters"}:
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
                    "parameters": [_ID],
                    "requestBody": {"required": True, "content": _content(_ref("Parameters"))},
                    "security": _security(write),
                    "responses": {"200": _one(resource, "The resolved Task."), **ERRORS, **BUSY},
                }
            }
        paths[f"/{name}"] = type_path
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
