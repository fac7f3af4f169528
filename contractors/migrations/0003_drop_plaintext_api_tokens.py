# API tokens moved from rest_framework.authtoken (plain text, one per user, no expiry) to knox
# (digests, expiring). The old table held working credentials in plain text: drop it, which
# revokes every old token (clients sign in again). Nothing to restore on the way back.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("contractors", "0002_contractor_schedule_version"),
    ]

    operations = [
        migrations.RunSQL("DROP TABLE IF EXISTS authtoken_token", migrations.RunSQL.noop),
    ]
