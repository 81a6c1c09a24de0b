"""Friendly error pages that never show a stack trace; JSON under /api/ and /fhir/."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(("/api/", "/fhir/"))


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"error": {"code": "not_found", "message": _("Not found.")}}, status=404)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        message = _("Something went wrong on our side. Please try again in a few minutes.")
        return JsonResponse({"error": {"code": "server_error", "message": message}}, status=500)
    return render(request, "500.html", status=500)
