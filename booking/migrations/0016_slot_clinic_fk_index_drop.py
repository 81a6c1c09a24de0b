# The clinic foreign key's lone index goes: slot_clinic_start (0015) serves the same look-ups, and
# with the lone index present the planner read and sorted each clinic's whole agenda for "soonest
# near a place" instead of walking its soonest free slots (docs/benchmarks.md, 2026-11-27).
# Dropped concurrently: the migration never blocks bookings.

import django.db.models.deletion
from django.db import migrations, models

from config.migration_ops import drop_index_concurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("booking", "0015_slot_clinic_start"),
        ("clinics", "0011_invitation_revoke_practitioner"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="slot",
                    name="clinic",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="slots",
                        to="clinics.clinic",
                    ),
                ),
            ],
            database_operations=[
                drop_index_concurrently("booking_slot", "booking_slot_clinic_id_4b041c14", '"clinic_id"'),
            ],
        ),
    ]
