from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ClinicsConfig(AppConfig):
    name = "clinics"
    verbose_name = _("Clinics")

    def ready(self) -> None:
        from .audit_chain import Chain, chain_register
        from .models import StaffAuditEvent

        chain_register(
            Chain(
                name="staff",
                label=_("Clinic staff reads of citizens' records"),
                model=StaffAuditEvent,
                fields=STAFF_CHAIN_FIELDS,
                lock_key=STAFF_CHAIN_LOCK_KEY,
            )
        )


# Part of every link's hash: changing this list breaks every existing chain (a migration relinks).
STAFF_CHAIN_FIELDS = ("user_id", "clinic_id", "action", "resource_type", "resource_id", "purpose", "at")
STAFF_CHAIN_LOCK_KEY = 0x61756473  # "auds" in ASCII: any constant unique within the database
