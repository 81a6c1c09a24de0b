"""Who is calling (an EMR client, by OAuth 2.0 bearer token), what it may do, and how often."""

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework import exceptions, permissions, throttling

from sync.models import EmrClient

READ_METHODS = ("GET", "HEAD")


@dataclass(frozen=True)
class EmrPrincipal:
    """``request.user`` on the FHIR API: the EMR client, not a ``User``."""

    emr_client: EmrClient
    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False

    @property
    def pk(self) -> int:
        return self.emr_client.pk

    def __str__(self) -> str:
        return str(self.emr_client)


class EmrClientAuthentication(OAuth2Authentication):
    """``Authorization: Bearer <token>`` from /oauth/token/; the token's application is an EMR client."""

    www_authenticate_realm = "fhir"

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        _user, token = result
        client = (
            EmrClient.objects.select_related("product").filter(application_id=token.application_id).first()
        )
        if client is None or not client.is_active:
            raise exceptions.AuthenticationFailed(
                "This access token does not belong to an active EMR client."
            )
        return EmrPrincipal(emr_client=client), token


class HasResourceScope(permissions.BasePermission):
    """The token carries ``system/<Type>.read`` (reads and searches) or ``system/<Type>.write``.

    The view names its resource type in ``resource_type``; a search sent as POST ``_search`` is a read.
    """

    def has_permission(self, request, view) -> bool:
        if not isinstance(request.user, EmrPrincipal) or request.auth is None:
            return False
        if not hasattr(view, request.method.lower()):
            return True  # an interaction this type does not offer: 405 for any client, with Allow
        action = (
            "read" if request.method in READ_METHODS or getattr(view, "is_search_post", False) else "write"
        )
        scope = f"system/{view.resource_type}.{action}"
        if not request.auth.allow_scopes([scope]):
            raise exceptions.PermissionDenied(f"This access token lacks the scope {scope}.")
        return True


class EmrClientRateThrottle(throttling.SimpleRateThrottle):
    """``settings.SYNC_API_RATE`` requests per EMR client, counted in the shared cache (Redis)."""

    scope = "sync"

    def get_rate(self) -> str:
        return settings.SYNC_API_RATE

    def get_cache_key(self, request, view) -> str | None:
        if not isinstance(request.user, EmrPrincipal):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.emr_client.pk}


SEEN_EVERY = dt.timedelta(seconds=60)


def emr_client_seen(client: EmrClient) -> None:
    """Record that ``client`` just got a 2xx (the clinic's "EMR health" panel), at most once a
    minute per client: a cache key gates the write, and the conditional UPDATE keeps it to one row
    even when the cache is cold."""
    if not cache.add(f"sync:seen:{client.pk}", 1, timeout=int(SEEN_EVERY.total_seconds())):
        return
    now = timezone.now()
    EmrClient.objects.filter(pk=client.pk).exclude(last_success_at__gt=now - SEEN_EVERY).update(
        last_success_at=now
    )
