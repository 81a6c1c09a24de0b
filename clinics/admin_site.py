"""The admin site at /gestion/: active board administrators who proved their second factor in this
session (``clinics.access``); Django's ``is_staff`` flag is neither needed nor enough (no page sets it,
and it says nothing about the board role or the second factor).

Django's own admin sign-in checks a password only: a session opened there never proves a second
factor, so it never opens the admin. Board administrators sign in through allauth (password and
TOTP or security key), then come here.
"""

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _


def board_admin_with_second_factor(request: HttpRequest) -> bool:
    from .access import mfa_enabled, mfa_proven_in_session
    from .selectors_onboarding import is_board_admin

    user = request.user
    return (
        user.is_authenticated
        and user.is_active
        and is_board_admin(user)
        and mfa_enabled(user)
        and mfa_proven_in_session(request)
    )


class BoardAdminSite(admin.AdminSite):
    site_header = _("Rendez-vous santé Québec — board administration")
    site_title = _("Board administration")

    def has_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and board_admin_with_second_factor(request))
