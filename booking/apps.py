from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BookingConfig(AppConfig):
    name = "booking"
    verbose_name = _("Booking")

    def ready(self) -> None:
        from clinics.audit_chain import Chain, chain_register

        from . import dbfunctions
        from .models import CitizenDataEvent

        dbfunctions.register_sqlite_functions()
        chain_register(
            Chain(
                name="citizen",
                label=_("Citizens' own data downloads and account closings"),
                model=CitizenDataEvent,
                fields=CITIZEN_CHAIN_FIELDS,
                lock_key=CITIZEN_CHAIN_LOCK_KEY,
            )
        )


# Part of every link's hash: changing this list breaks every existing chain (a migration relinks).
CITIZEN_CHAIN_FIELDS = ("actor_id", "user_id", "action", "resource_id", "at")
CITIZEN_CHAIN_LOCK_KEY = 0x61756463  # "audc" in ASCII: any constant unique within the database
