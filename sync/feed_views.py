"""The change feed over HTTP: ``GET Appointment/_history`` and the cursor endpoint ``GET $feed``.

Both answer a Bundle of type ``history`` in feed order (oldest first) whose entries carry the
resource as it is now, and a ``next`` link holding the cursor to continue from; ``sync.feed`` says
why following that cursor never misses an event nor repeats one.
"""

import math
import time
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from oauth2_provider.models import AccessToken
from rest_framework.request import Request
from rest_framework.response import Response

from . import feed
from .audit import audit_record
from .feed_bundle import history_bundle
from .fhir.errors import FhirError
from .fhir.search import RESOURCES, _date
from .models import AuditEvent
from .views import FhirView, fhir_base_url

DEFAULT_COUNT = 100
MAX_COUNT = 500


def _int_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()):  # "²" is a digit for isdigit, not for int
        raise FhirError(400, "invalid", f"{name} must be a whole number, not {value!r}.")
    return int(value)


def _count(request: Request) -> int:
    count = _int_param(request, "_count")
    if count is None:
        return DEFAULT_COUNT
    if not 1 <= count <= MAX_COUNT:
        raise FhirError(400, "invalid", f"_count must be between 1 and {MAX_COUNT}.")
    return count


def _poll_budget_take(client_id: int) -> None:
    """At most one poll per ``SYNC_FEED_MIN_INTERVAL_SECONDS`` per client, else 429 + Retry-After.

    ``cache.add`` is atomic in Redis, so two concurrent polls of one client cannot both pass. A page
    that came back full gives the budget back (``_poll_budget_return``): catching up on a backlog
    is never slowed down, only polling an idle feed is.
    """
    interval = settings.SYNC_FEED_MIN_INTERVAL_SECONDS
    if interval <= 0:
        return
    key = f"sync:feed-poll:{client_id}"
    until = time.time() + interval
    if cache.add(key, until, timeout=interval):
        return
    stored = cache.get(key)
    wait = max(1, math.ceil((stored or until) - time.time()))
    raise FhirError(
        429,
        "throttled",
        f"The change feed may be polled once every {interval} seconds per client; retry in {wait} seconds.",
        headers={"Retry-After": str(wait)},
    )


def _poll_budget_return(client_id: int) -> None:
    cache.delete(f"sync:feed-poll:{client_id}")


class FeedBundleView(FhirView):
    """Shared by both endpoints; the token needs ``system/Appointment.read``."""

    resource = RESOURCES["Appointment"]
    include_slots = False
    interaction = "feed"
    feed_cursors: tuple[int | None, int | None, int | None] | None = None  # for sandbox_request_record

    def page_response(self, page: feed.FeedPage, *, next_url: str, self_url: str) -> Response:
        built = history_bundle(
            page,
            clinic_ids=self.clinic_ids(),
            base_url=fhir_base_url(self.request),
            self_url=self_url,
            next_url=next_url,
            now=timezone.now(),
        )
        if built.appointment_ids:
            audit_record(
                emr_client=self.emr_client,
                action=AuditEvent.Action.FEED,
                resource_type="Appointment",
                ids=built.appointment_ids,
            )
        if page.full:
            _poll_budget_return(self.emr_client.pk)
        return Response(built.bundle)

    def run(self, *, endpoint: str, cursor: int | None, since: Any, count: int) -> Response:
        if settings.SYNC_FEED_RELAY_INLINE:
            feed.feed_relay()  # the demo has no beat: number what committed before reading
        try:
            page = feed.feed_page(
                clinic_ids=self.clinic_ids(),
                cursor=cursor,
                since=since,
                count=count,
                include_slots=self.include_slots,
            )
        except feed.FeedExpired:
            raise FhirError(
                410,
                "expired",
                "This cursor is older than the change feed keeps "
                f"({settings.SYNC_FEED_RETENTION_DAYS} days). Resync: GET $feed without a cursor and "
                "keep its cursor, read the current Slots and Appointments, then follow the feed from "
                "that cursor.",
            ) from None
        except feed.FeedCursorUnknown:
            raise FhirError(400, "invalid", "This cursor was not given by this server.") from None
        base = fhir_base_url(self.request)
        url = f"{base}{endpoint}"
        query = self.request.META.get("QUERY_STRING", "")
        self_url = f"{url}?{query}" if query else url
        next_url = f"{url}?{urlencode({'cursor': page.next_cursor, '_count': count})}"
        self.feed_cursors = (cursor, page.next_cursor, len(page.events))
        return self.page_response(page, next_url=next_url, self_url=self_url)


class FeedView(FeedBundleView):
    """``GET $feed?cursor=n&_count=m``: every change after ``n`` (Appointments, and Slots when the
    token also has ``system/Slot.read``). Without a cursor: no entries, and the current head as the
    cursor to start from."""

    def get(self, request: Request) -> Response:
        token = request.auth
        self.include_slots = isinstance(token, AccessToken) and token.allow_scopes(["system/Slot.read"])
        unknown = set(request.query_params) - {"cursor", "_count", "_format"}
        if unknown:
            raise FhirError(400, "not-supported", f"Unknown parameter(s): {', '.join(sorted(unknown))}.")
        count = _count(request)
        cursor = _int_param(request, "cursor")
        _poll_budget_take(self.emr_client.pk)
        if cursor is None:
            head = feed.feed_head()
            base = fhir_base_url(request)
            page = feed.FeedPage(events=[], next_cursor=head, full=False)
            self.feed_cursors = (None, head, 0)
            next_url = f"{base}$feed?{urlencode({'cursor': head, '_count': count})}"
            return self.page_response(page, next_url=next_url, self_url=f"{base}$feed")
        return self.run(endpoint="$feed", cursor=cursor, since=None, count=count)


class AppointmentHistoryView(FeedBundleView):
    """``GET Appointment/_history?_since=instant&_count=m``: the appointments changed since; its
    ``next`` link carries a ``cursor`` (the same numbers as ``$feed``), which is what to follow."""

    def get(self, request: Request) -> Response:
        unknown = set(request.query_params) - {"_since", "cursor", "_count", "_format"}
        if unknown:
            raise FhirError(400, "not-supported", f"Unknown parameter(s): {', '.join(sorted(unknown))}.")
        count = _count(request)
        cursor = _int_param(request, "cursor")
        since = None
        if "_since" in request.query_params:
            _, since = _date("ge" + request.query_params["_since"], allowed=("ge",))
        _poll_budget_take(self.emr_client.pk)
        return self.run(endpoint="Appointment/_history", cursor=cursor, since=since, count=count)
