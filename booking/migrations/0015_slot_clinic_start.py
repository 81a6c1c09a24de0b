# The index that replaces the clinic foreign key's own (next migration): built first, without blocking
# writes (docs/migrations.md). It serves every look-up by clinic, in start order.

from django.db import migrations, models

from config.migration_ops import AddIndexConcurrentlyPortable


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("booking", "0014_privacy_anonymize"),
    ]

    operations = [
        AddIndexConcurrentlyPortable(
            model_name="slot",
            index=models.Index(fields=["clinic", "start"], name="slot_clinic_start"),
        ),
    ]
