"""Security headers that Django 5.2 does not set itself: Content-Security-Policy and Permissions-Policy.

The policy comes from ``settings.SECURE_CSP`` (directive → sources), with the same shape as Django
6.0's built-in setting so that the upgrade can drop this middleware. No page needs
``'unsafe-inline'``: our templates carry no inline script, style attribute or ``on*`` handler, and
the one page that must run an inline script (the Swagger UI on ``/api/docs/``, whose start-up script
drf-spectacular renders with the CSRF token and the schema URL) marks it with a per-request nonce.

The nonce is drawn lazily: ``request.csp_nonce`` is a fresh random value the first time a template
reads it, and only then is ``'nonce-…'`` added to ``script-src``. A page that reads no nonce is served
the plain policy, so a nonce never weakens pages that do not need one.

``settings.SECURE_CSP_PATH_OVERRIDES`` (path prefix → directives) replaces directives for one part of
the site; docs/security.md lists each exception and why it exists.
"""

import secrets
from collections.abc import Callable, Mapping, Sequence

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject

CSP_HEADER = "Content-Security-Policy"
# Where a nonce goes: script-src, or default-src when the policy has no script-src.
_NONCE_DIRECTIVES = ("script-src", "default-src")


def build_policy(directives: Mapping[str, Sequence[str]], *, nonce: str | None = None) -> str:
    """The header value: ``directive source source; …`` in the settings' order."""
    target = next((name for name in _NONCE_DIRECTIVES if name in directives), None) if nonce else None
    parts = []
    for name, sources in directives.items():
        values = [*sources, f"'nonce-{nonce}'"] if name == target else list(sources)
        parts.append(" ".join([name, *values]) if values else name)
    return "; ".join(parts)


def policy_for_path(path: str) -> dict[str, list[str]]:
    directives = {name: list(sources) for name, sources in settings.SECURE_CSP.items()}
    overrides: Mapping[str, Mapping[str, Sequence[str]]] = getattr(settings, "SECURE_CSP_PATH_OVERRIDES", {})
    for prefix, replaced in overrides.items():
        if path.startswith(prefix):
            directives.update({name: list(sources) for name, sources in replaced.items()})
    return directives


class _Nonce:
    """Remembers whether the page used its nonce (only then does the header carry it)."""

    def __init__(self) -> None:
        self.value: str | None = None

    def get(self) -> str:
        if self.value is None:
            self.value = secrets.token_urlsafe(18)
        return self.value


class SecurityHeadersMiddleware:
    """Adds Content-Security-Policy and Permissions-Policy to every response that lacks them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        nonce = _Nonce()
        request.csp_nonce = SimpleLazyObject(nonce.get)  # type: ignore[attr-defined]
        response = self.get_response(request)
        if CSP_HEADER not in response and not self._debug_error_page(response):
            response[CSP_HEADER] = build_policy(policy_for_path(request.path), nonce=nonce.value)
        permissions = getattr(settings, "PERMISSIONS_POLICY", {})
        if permissions and "Permissions-Policy" not in response:
            response["Permissions-Policy"] = ", ".join(
                f"{feature}=({' '.join(allow)})" for feature, allow in permissions.items()
            )
        return response

    @staticmethod
    def _debug_error_page(response: HttpResponse) -> bool:
        # Django's own debug pages (DEBUG only: the demo and a developer's machine) are styled and
        # scripted inline; production 404 and 500 pages are ours and keep the full policy.
        return bool(settings.DEBUG) and response.status_code in (404, 500)
