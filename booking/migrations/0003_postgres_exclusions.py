"""PostgreSQL-only guards for invariant 2 (no overlaps), as exclusion constraints.

On the SQLite demo the same rules are checked by the services inside a serialized (IMMEDIATE)
transaction; every test runs on PostgreSQL, where these constraints are the last word.
"""

from django.db import migrations

OCCUPYING = "('booked', 'arrived', 'fulfilled', 'noshow')"

FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS btree_gist",
    # A practitioner never has two published slots that overlap, even in two clinics.
    'ALTER TABLE booking_slot ADD CONSTRAINT slot_no_overlap_per_practitioner EXCLUDE USING gist '
    '(practitioner_id WITH =, tstzrange("start", "end") WITH &&) WHERE (status <> \'cancelled\')',
    # A patient never has two occupying appointments that overlap in time.
    'ALTER TABLE booking_appointment ADD CONSTRAINT appt_no_overlap_per_citizen EXCLUDE USING gist '
    f'(citizen_id WITH =, tstzrange("start", "end") WITH &&) WHERE (status IN {OCCUPYING})',
]
BACKWARD = [
    "ALTER TABLE booking_appointment DROP CONSTRAINT IF EXISTS appt_no_overlap_per_citizen",
    "ALTER TABLE booking_slot DROP CONSTRAINT IF EXISTS slot_no_overlap_per_practitioner",
]


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in FORWARD:
            schema_editor.execute(sql)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in BACKWARD:
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("booking", "0002_initial")]
    operations = [migrations.RunPython(forward, backward, elidable=False)]
