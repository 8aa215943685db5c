"""API keys gain scopes and an optional expiry. Keys made before scopes existed could do everything their
account could, and keep that: the data step gives each of them every scope (a staff scope still works only
for a staff account, as before)."""

import django.contrib.postgres.fields
from django.apps.registry import Apps
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

# The scopes as they are at this migration, not imported from the model: a later scope must not be granted
# to old keys by replaying this migration.
FULL_ACCESS = ["read", "trade", "markets", "resolve"]


def grant_existing_keys_full_access(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    apps.get_model("accounts", "ApiKey").objects.update(scopes=FULL_ACCESS)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_community_follows_notifications"),
    ]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="apikey",
            name="scopes",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.CharField(
                    choices=[
                        ("read", "Read prices, markets and your own account"),
                        ("trade", "Trade"),
                        ("markets", "Create and manage markets (staff)"),
                        ("resolve", "Resolve markets (staff)"),
                    ],
                    max_length=20,
                ),
                default=list,
                size=None,
            ),
        ),
        migrations.RunPython(grant_existing_keys_full_access, migrations.RunPython.noop, elidable=True),
    ]
