"""Independent subscribers: publication order, per-subscriber positions and failures.

Existing rows: an event the old relay had delivered is published with its old number as its
`sequence` (clients' cursors keep their meaning) and every built-in subscriber starts after the
last of them; an event still pending or dead is left unpublished, so the publisher gives it a
new sequence and every subscriber handles it (handlers are idempotent). Per-handler receipts
are no longer needed: a transactional handler's effects commit with its position.
"""

import django.db.models.deletion
from django.db import migrations, models


def publish_delivered(apps, schema_editor):
    Event = apps.get_model("events", "Event")
    EventGroup = apps.get_model("events", "EventGroup")
    Subscriber = apps.get_model("events", "Subscriber")
    table, groups = Event._meta.db_table, EventGroup._meta.db_table
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET sequence = id, published_at = delivered_at "
            "WHERE status = 'delivered'"
        )
        cursor.execute(
            f"DELETE FROM {groups} WHERE event_id IN "
            f"(SELECT id FROM {table} WHERE sequence IS NULL)"
        )
        cursor.execute(
            f"UPDATE {groups} SET sequence = event_id, "
            f"type = (SELECT type FROM {table} WHERE {table}.id = {groups}.event_id)"
        )
        cursor.execute(f"SELECT MAX(sequence) FROM {table}")
        (head,) = cursor.fetchone()
    if head:
        # The handlers the old relay had run on every delivered event start after them.
        for name in ("realtime.broadcast", "contractors.rating_summary",
                     "scheduling.availability_cache", "scheduling.rerank", "events.bus"):
            Subscriber.objects.create(name=name, position=head)


class Migration(migrations.Migration):

    dependencies = [
        ("events", "0003_delivered_at_index"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="event", name="event_pending_idx"),
        migrations.RemoveIndex(model_name="event", name="event_delivered_at_idx"),
        migrations.RemoveIndex(model_name="event", name="events_even_aggrega_08c42a_idx"),
        migrations.RemoveIndex(model_name="event", name="events_even_type_7b7ad7_idx"),
        migrations.RenameField(model_name="event", old_name="sequence", new_name="id"),
        migrations.AddField(
            model_name="event",
            name="sequence",
            field=models.BigIntegerField(
                blank=True, help_text="Publication order; null until published.", null=True,
                unique=True,
            ),
        ),
        migrations.AddField(
            model_name="event",
            name="published_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="eventgroup",
            name="sequence",
            field=models.BigIntegerField(null=True),
        ),
        migrations.AddField(
            model_name="eventgroup",
            name="type",
            field=models.CharField(default="", max_length=64),
            preserve_default=False,
        ),
        migrations.CreateModel(
            name="Subscriber",
            fields=[
                ("name", models.CharField(max_length=100, primary_key=True, serialize=False)),
                ("position", models.BigIntegerField(default=0)),
                ("owner", models.CharField(blank=True, default="", max_length=128)),
                ("lease_expires_at", models.DateTimeField(blank=True, null=True)),
                ("progressed_at", models.DateTimeField(blank=True, null=True)),
                (
                    "outage_since",
                    models.DateTimeField(
                        blank=True, help_text="Its store has been unreachable since then.",
                        null=True,
                    ),
                ),
                ("outage_error", models.TextField(blank=True, default="")),
            ],
        ),
        migrations.RunPython(publish_delivered, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="eventgroup",
            name="sequence",
            field=models.BigIntegerField(),
        ),
        migrations.RemoveField(model_name="event", name="attempts"),
        migrations.RemoveField(model_name="event", name="available_at"),
        migrations.RemoveField(model_name="event", name="claimed_by"),
        migrations.RemoveField(model_name="event", name="delivered_at"),
        migrations.RemoveField(model_name="event", name="last_error"),
        migrations.RemoveField(model_name="event", name="lease_expires_at"),
        migrations.RemoveField(model_name="event", name="status"),
        migrations.DeleteModel(name="HandlerReceipt"),
        migrations.CreateModel(
            name="RelayInstance",
            fields=[
                ("name", models.CharField(max_length=128, primary_key=True, serialize=False)),
                ("heartbeat_at", models.DateTimeField()),
                ("started_at", models.DateTimeField()),
            ],
        ),
        migrations.CreateModel(
            name="FailedDelivery",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                           verbose_name="ID")),
                ("attempts", models.PositiveIntegerField(default=1)),
                ("dead", models.BooleanField(default=False)),
                ("next_attempt_at", models.DateTimeField()),
                ("first_failed_at", models.DateTimeField()),
                ("last_failed_at", models.DateTimeField()),
                ("last_error", models.TextField(blank=True, default="")),
                (
                    "event",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="failures",
                        to="events.event",
                    ),
                ),
                (
                    "subscriber",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="failures",
                        to="events.subscriber",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "failed deliveries",
                "indexes": [
                    models.Index(
                        condition=models.Q(("dead", False)),
                        fields=["subscriber", "next_attempt_at"],
                        name="failed_delivery_due_idx",
                    )
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("subscriber", "event"), name="failed_delivery_once_per_subscriber"
                    )
                ],
            },
        ),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(
                condition=models.Q(("sequence", None)), fields=["id"],
                name="event_unpublished_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(
                fields=["aggregate_type", "aggregate_id", "sequence"],
                name="event_aggregate_seq_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(fields=["type", "sequence"], name="event_type_seq_idx"),
        ),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(fields=["occurred_at"], name="event_occurred_at_idx"),
        ),
        migrations.AddIndex(
            model_name="eventgroup",
            index=models.Index(fields=["group", "sequence"], name="event_group_seq_idx"),
        ),
        migrations.AddIndex(
            model_name="eventgroup",
            index=models.Index(
                fields=["group", "type", "sequence"], name="event_group_type_seq_idx"
            ),
        ),
    ]
