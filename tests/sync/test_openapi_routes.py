"""The OpenAPI document (``/fhir/r4/openapi.json``, sync/openapi.py) describes exactly what is routed.

Three lists that once drifted apart (issue 3): the FHIR routes of ``sync.urls`` (and the methods
their views answer), the operations the OpenAPI document describes, and the interactions and
operations the CapabilityStatement promises. A new route, method or operation that is not described
fails here, as does a description of something no longer served.
"""

import re
from functools import partial

from django.urls import URLPattern, URLResolver

from sync import urls as fhir_urls
from sync.views import SearchPostView, UnknownView

from .conftest import FHIR, get_token

METHODS = ("get", "post", "put", "delete", "patch")
# Handlers that exist only to refuse, with an OperationOutcome saying what to do instead: not
# operations to describe. ``GET [type]/_search`` (405: POST it) and ``GET Patient`` (400: no NAM in a URL).
REFUSALS = {("get", "/Patient"), ("get", "/Patient/_search")}
# Path groups by their OpenAPI name (``pk`` is FHIR's ``{id}``).
GROUP_NAMES = {"pk": "id"}
_GROUP = re.compile(r"\(\?P<(\w+)>((?:[^()]|\([^()]*\))*)\)")


def _template(pattern: URLPattern) -> tuple[str, dict[str, str]]:
    """The route as an OpenAPI path template, and each path parameter's regular expression."""
    route = getattr(pattern.pattern, "_route", None)
    if route is not None:  # path(): no converters are used under /fhir/r4/
        assert "<" not in route, route
        return "/" + route, {}
    regex = pattern.pattern._regex.removeprefix("^").removesuffix("$")
    groups = {GROUP_NAMES.get(name, name): body for name, body in _GROUP.findall(regex)}
    template = _GROUP.sub(lambda m: "{" + GROUP_NAMES.get(m[1], m[1]) + "}", regex)
    return "/" + re.sub(r"\\(.)", r"\1", template), groups


def routed() -> tuple[set[tuple[str, str]], dict[tuple[str, str], str]]:
    """(method, path) of every FHIR route that does something, and the regex of each path parameter."""
    operations: set[tuple[str, str]] = set()
    parameters: dict[tuple[str, str], str] = {}
    for pattern in fhir_urls.urlpatterns:
        assert not isinstance(pattern, URLResolver)
        view = pattern.callback.view_class
        if view is UnknownView:  # the catch-all 404 for anything else
            continue
        path, groups = _template(pattern)
        for name, body in groups.items():
            parameters[(path, name)] = f"^{body}$"
        for method in METHODS:
            if not hasattr(view, method) or (method, path) in REFUSALS:
                continue
            if method == "get" and issubclass(view, SearchPostView):  # GET [type]/_search: 405
                continue
            operations.add((method, path))
    return operations, parameters


def described(document: dict) -> set[tuple[str, str]]:
    return {
        (method, path) for path, item in document["paths"].items() for method in item if method in METHODS
    }


def promised(capability: dict) -> set[tuple[str, str]]:
    """(method, path) of every interaction and operation the CapabilityStatement lists."""
    rest = capability["rest"][0]
    result = {("get", "/metadata")}
    by_code = {"transaction": ("post", "/"), "batch": ("post", "/")}
    result |= {by_code[i["code"]] for i in rest["interaction"]}
    by_name = {"feed": ("get", "/$feed"), "snapshot": ("post", "/Schedule/{id}/$snapshot")}
    result |= {by_name[o["name"]] for o in rest["operation"]}
    # The status URL the snapshot's 202 points to (Content-Location), described with it.
    result.add(("get", "/Schedule/{id}/$snapshot-status/{snapshot}"))
    for resource in rest["resource"]:
        kind = resource["type"]
        for interaction in resource["interaction"]:
            code = interaction["code"]
            if code == "read":
                result.add(("get", f"/{kind}/{{id}}"))
            elif code == "search-type":
                if kind != "Patient":  # POST _search only, with the NAM in the body
                    result.add(("get", f"/{kind}"))
                if kind not in ("CodeSystem", "ValueSet", "Subscription"):  # GET only
                    result.add(("post", f"/{kind}/_search"))
            elif code == "create":
                result.add(("post", f"/{kind}"))
            elif code == "update":
                result.add(("put", f"/{kind}/{{id}}"))
            elif code == "delete":
                result.add(("delete", f"/{kind}/{{id}}"))
            elif code == "history-type":
                result.add(("get", f"/{kind}/_history"))
            else:
                raise AssertionError(f"{kind}: interaction {code} not mapped here")
        if resource.get("conditionalUpdate"):
            result.add(("put", f"/{kind}"))
        for operation in resource.get("operation", []):
            result.add(("post", f"/{kind}/{{id}}/${operation['name']}"))
    return result


def test_the_openapi_document_describes_every_fhir_route_and_nothing_else(client, db):
    document = client.get(f"{FHIR}openapi.json").json()
    operations, parameters = routed()
    missing = operations - described(document)
    extra = described(document) - operations
    assert not missing, f"routed but not described in sync/openapi.py: {sorted(missing)}"
    assert not extra, f"described but not routed: {sorted(extra)}"
    # Each path parameter is described with the pattern its route accepts (an id the route refuses
    # would otherwise be "valid" for the description and land in the catch-all 404).
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for param in operation.get("parameters", []):
                if param["in"] == "path":
                    assert param["schema"]["pattern"] == parameters[(path, param["name"])], (method, path)


def test_the_openapi_document_describes_everything_the_capability_statement_promises(client, db):
    document = client.get(f"{FHIR}openapi.json").json()
    capability = client.get(f"{FHIR}metadata").json()
    missing = promised(capability) - described(document)
    assert not missing, f"in the CapabilityStatement, not in the OpenAPI document: {sorted(missing)}"
    # And the other way: every described FHIR operation is in the CapabilityStatement.
    documents = {("get", "/openapi.json"), ("get", "/.well-known/smart-configuration")}
    assert described(document) - documents <= promised(capability)


def test_each_operation_requires_the_scope_it_describes(client, persona_a):
    """A token with every scope but the described one is refused (403); with that one alone, it is not."""
    document = client.get(f"{FHIR}openapi.json").json()
    flows = document["components"]["securitySchemes"]["emrClientCredentials"]["flows"]
    every = set(flows["clientCredentials"]["scopes"])
    public = {"/metadata", "/openapi.json", "/.well-known/smart-configuration"}
    tokens: dict[str, tuple[str, str]] = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if path in public or path.startswith(("/CodeSystem", "/ValueSet")):
                assert operation["security"] == [], (method, path)
                continue
            (requirement,) = operation["security"]
            (scope,) = requirement["emrClientCredentials"]
            assert scope in every, (method, path)
            errors = operation["responses"]["4XX"]["content"]["application/fhir+json"]["schema"]
            assert errors == {"$ref": "#/components/schemas/OperationOutcome"}, (method, path)
            if scope not in tokens:
                tokens[scope] = (
                    get_token(client, persona_a, scope),
                    get_token(client, persona_a, " ".join(sorted(every - {scope}))),
                )
            only, all_but = tokens[scope]
            url = FHIR + re.sub(r"\{\w+\}", "1", path).removeprefix("/")
            media = next(iter(operation.get("requestBody", {}).get("content", {})), "application/fhir+json")
            call = partial(getattr(client, method), url, content_type=media)
            refused = call(HTTP_AUTHORIZATION=f"Bearer {all_but}")
            assert refused.status_code == 403, (method, path, refused.status_code)
            assert scope in refused.json()["issue"][0]["diagnostics"]
            allowed = call(HTTP_AUTHORIZATION=f"Bearer {only}")
            assert allowed.status_code not in (401, 403), (method, path, allowed.content)
