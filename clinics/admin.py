"""The board's pages in Django's admin (/gestion/, gated by ``clinics.admin_site``)."""

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from .admin_site import board_admin_with_second_factor
from .models import PrivacyIncident
from .services_incidents import privacy_incident_save


class PrivacyIncidentForm(forms.ModelForm):
    categories = forms.TypedMultipleChoiceField(
        label=_("Categories of personal information"),
        choices=PrivacyIncident.Category.choices,
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = PrivacyIncident
        fields = [
            "occurred_at",
            "discovered_at",
            "reported_by_role",
            "description",
            "categories",
            "people_affected",
            "serious_injury_risk",
            "risk_reasoning",
            "cai_notified",
            "cai_notified_on",
            "persons_notified",
            "persons_notified_on",
            "measures",
            "status",
        ]


@admin.register(PrivacyIncident)
class PrivacyIncidentAdmin(admin.ModelAdmin):
    form = PrivacyIncidentForm
    list_display = [
        "pk",
        "discovered_at",
        "occurred_at",
        "people_affected",
        "serious_injury_risk",
        "cai_notified",
        "persons_notified",
        "status",
    ]
    list_filter = ["status", "serious_injury_risk", "cai_notified", "persons_notified", "discovered_at"]
    search_fields = ["description", "reported_by_role", "measures"]
    date_hierarchy = "discovered_at"
    readonly_fields = ["created_by", "created_at", "updated_at"]

    # The register is the board's: the site already checks the role and the second factor; these
    # repeat it per model instead of Django's model permissions. Entries are never deleted.
    def has_module_permission(self, request: HttpRequest) -> bool:
        return board_admin_with_second_factor(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return board_admin_with_second_factor(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return board_admin_with_second_factor(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return board_admin_with_second_factor(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: PrivacyIncident, form: Any, change: bool) -> None:
        privacy_incident_save(incident=obj, by=request.user)  # type: ignore[arg-type]
