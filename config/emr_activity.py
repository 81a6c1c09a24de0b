"""When each EMR client last called the FHIR API: the "EMR silent for too long" alert reads it.

An EMR that stops calling (its sync service crashed, its certificate expired, its network is down)
keeps booking locally and sends nothing: the clinic's agenda here drifts from the EMR's. The
request middleware notes each authenticated EMR call in the shared cache (Redis), at most once per
``WRITE_EVERY`` seconds per client and process; ``/metrics`` reports, per EMR product whose clinics
use it, the seconds since the most recent call of any of its clients.

Redis holds nothing that cannot be lost: after a flush a product is simply absent from the metric
until its next call (the alert does not fire on absence; ``docs/runbooks/emr-silent.md``).
"""

import time

from django.core.cache import cache
from django.http import HttpRequest

KEY = "emr-seen:{}"
WRITE_EVERY = 15.0
KEEP_SECONDS = 14 * 24 * 3600
_last_write: dict[int, float] = {}


def note_request(request: HttpRequest) -> None:
    """Called after each response: if DRF authenticated an EMR client, remember when."""
    principal = request.__dict__.get("user")  # set by DRF's authentication; never evaluate a lazy user
    client = getattr(principal, "emr_client", None)
    client_id = getattr(client, "pk", None)
    if client_id is None:
        return
    now = time.time()
    if now - _last_write.get(client_id, 0.0) < WRITE_EVERY:
        return
    _last_write[client_id] = now
    try:
        cache.set(KEY.format(client_id), now, timeout=KEEP_SECONDS)
    except Exception:  # noqa: BLE001 - the cache being down must not fail the EMR's request
        return


def product_silence(now: float | None = None) -> dict[str, float]:
    """Product name → seconds since any of its active clients last called; only for products that at
    least one clinic uses through an active grant, and that were seen at least once."""
    from sync.models import EmrClient, EmrClinicGrant

    in_use = set(
        EmrClinicGrant.objects.filter(revoked_at__isnull=True).values_list("product_id", flat=True).distinct()
    )
    clients = list(
        EmrClient.objects.filter(is_active=True, product_id__in=in_use).values_list(
            "pk", "product__vendor", "product__name"
        )
    )
    seen = cache.get_many([KEY.format(pk) for pk, _vendor, _name in clients])
    now = now if now is not None else time.time()
    latest: dict[str, float] = {}
    for pk, vendor, name in clients:
        at = seen.get(KEY.format(pk))
        if at is None:
            continue
        label = f"{vendor} {name}"
        latest[label] = max(latest.get(label, 0.0), float(at))
    return {label: max(0.0, now - at) for label, at in latest.items()}
