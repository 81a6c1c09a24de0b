"""Liveness and readiness probes for the load balancer and the people on call."""

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception:  # noqa: BLE001 - any failure means not ready
        checks["database"] = "unavailable"
    if settings.REDIS_URL:
        try:
            cache.set("readyz", "1", timeout=5)
            checks["redis"] = "ok" if cache.get("readyz") == "1" else "unavailable"
        except Exception:  # noqa: BLE001
            checks["redis"] = "unavailable"
    else:
        checks["redis"] = "not configured (demo: local memory, tasks inline)"
    ready = all(v == "ok" or v.startswith("not configured") for v in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )
