"""The EMR audit log becomes a hash chain (clinics.audit_chain): existing rows are linked in id order."""

from django.db import migrations, models


def link_existing(apps, schema_editor):
    from clinics.audit_chain import chain_relink
    from sync.apps import EMR_CHAIN_FIELDS

    chain_relink(apps.get_model("sync", "AuditEvent"), EMR_CHAIN_FIELDS)


class Migration(migrations.Migration):
    dependencies = [("sync", "0008_snapshot_sweep")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="prev_hash",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditevent",
            name="chain_hash",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(link_existing, migrations.RunPython.noop),
    ]
