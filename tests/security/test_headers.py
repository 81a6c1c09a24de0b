"""Security headers on every kind of response, and the production cookie and transport settings.

The policy itself is checked in a real browser by test_csp_browser.py; here: that it is sent, has
no 'unsafe-inline' anywhere, and that a nonce appears only on the page that uses one, fresh for
every response.
"""

import json
import re

import pytest

from tests.conftest import identify_payload
from tests.factories import CitizenFactory
from tests.test_deploy import PRODUCTION_ENV, _run

EXPECTED_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
}


def parse_csp(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/identification/",
        "/comptes/login/",
        "/healthz",
        "/api/v1/appointments",
        "/fhir/r4/metadata",
        "/nowhere/",
    ],
)
def test_every_response_carries_the_security_headers(client, db, path):
    response = client.get(path)
    assert parse_csp(response["Content-Security-Policy"]) == EXPECTED_CSP
    assert "unsafe" not in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Permissions-Policy"] == "camera=(), microphone=(), geolocation=(), payment=()"


def test_the_api_documentation_gets_a_fresh_nonce_for_its_one_inline_script(client, db):
    nonces = []
    for _ in range(2):
        response = client.get("/api/docs/")
        csp = parse_csp(response["Content-Security-Policy"])
        assert "unsafe" not in response["Content-Security-Policy"]
        (nonce,) = [s for s in csp["script-src"] if s.startswith("'nonce-")]
        value = nonce.removeprefix("'nonce-").removesuffix("'")
        html = response.content.decode()
        # Every inline script carries it; no inline <style> is left.
        inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html)
        assert inline == [f' nonce="{value}"']
        assert "<style" not in html
        nonces.append(value)
    assert nonces[0] != nonces[1]
    # Swagger UI opens OAuth pop-ups; drf-spectacular relaxes the opener policy on that page only.
    assert response["Cross-Origin-Opener-Policy"] == "unsafe-none"


def test_pages_without_inline_script_get_no_nonce(client, db):
    assert "nonce" not in client.get("/").headers["Content-Security-Policy"]


def test_production_cookies_and_transport_are_secure():
    code = (
        "import json; from django.conf import settings as s; print(json.dumps({k: getattr(s, k) for k in ("
        "'SESSION_COOKIE_SECURE', 'SESSION_COOKIE_HTTPONLY', 'SESSION_COOKIE_SAMESITE', "
        "'CSRF_COOKIE_SECURE', 'CSRF_COOKIE_SAMESITE', 'SECURE_SSL_REDIRECT', 'SECURE_HSTS_SECONDS', "
        "'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_HSTS_PRELOAD', 'SECURE_CONTENT_TYPE_NOSNIFF', "
        "'SECURE_REFERRER_POLICY', 'SECURE_CROSS_ORIGIN_OPENER_POLICY', 'X_FRAME_OPTIONS', 'DEBUG')}))"
    )
    result = _run("shell", "-c", code, env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == {
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "CSRF_COOKIE_SECURE": True,
        "CSRF_COOKIE_SAMESITE": "Lax",
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "SECURE_REFERRER_POLICY": "same-origin",
        "SECURE_CROSS_ORIGIN_OPENER_POLICY": "same-origin",
        "X_FRAME_OPTIONS": "DENY",
        "DEBUG": False,
    }


def test_the_session_cookie_is_sent_secure_http_only_and_same_site(client, db, settings):
    settings.SESSION_COOKIE_SECURE = True  # production's value (the test settings inherit it)
    settings.CSRF_COOKIE_SECURE = True
    client.get("/identification/")
    csrf = client.cookies["csrftoken"]
    assert csrf["secure"] and csrf["samesite"] == "Lax"
    client.post("/identification/", identify_payload(CitizenFactory()))
    session = client.cookies["sessionid"]
    assert session["secure"] and session["httponly"] and session["samesite"] == "Lax"
