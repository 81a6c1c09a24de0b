"""The staff audit log becomes a hash chain (clinics.audit_chain): existing rows are linked in id order."""

from django.db import migrations, models


def link_existing(apps, schema_editor):
    from clinics.apps import STAFF_CHAIN_FIELDS
    from clinics.audit_chain import chain_relink

    chain_relink(apps.get_model("clinics", "StaffAuditEvent"), STAFF_CHAIN_FIELDS)


class Migration(migrations.Migration):
    dependencies = [("clinics", "0007_onboarding")]

    operations = [
        migrations.AddField(
            model_name="staffauditevent",
            name="prev_hash",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="staffauditevent",
            name="chain_hash",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(link_existing, migrations.RunPython.noop),
    ]
