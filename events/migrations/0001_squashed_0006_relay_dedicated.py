# The app's migrations up to events 0006_relay_dedicated, squashed into one (generated from the models by
# makemigrations). `replaces` lets a database that applied all of them take this one as applied;
# see docs/operations.md, "Upgrading".

import django.db.models.deletion
import uuid
from django.db import migrations, models


class Migration(migrations.Migration):
    replaces = [
        ("events", "0001_initial"),
        ("events", "0002_handler_receipts"),
        ("events", "0003_delivered_at_index"),
        ("events", "0004_independent_subscribers"),
        ("events", "0005_pruned_through"),
        ("events", "0006_relay_dedicated"),
    ]


    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='PrunedThrough',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('sequence', models.BigIntegerField(default=0)),
                ('pruned_at', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'verbose_name_plural': 'pruned through',
            },
        ),
        migrations.CreateModel(
            name='RelayInstance',
            fields=[
                ('name', models.CharField(max_length=128, primary_key=True, serialize=False)),
                ('heartbeat_at', models.DateTimeField()),
                ('started_at', models.DateTimeField()),
                ('serves', models.JSONField(blank=True, default=list, help_text='The subscribers it is dedicated to; empty: all.')),
            ],
        ),
        migrations.CreateModel(
            name='Subscriber',
            fields=[
                ('name', models.CharField(max_length=100, primary_key=True, serialize=False)),
                ('position', models.BigIntegerField(default=0)),
                ('owner', models.CharField(blank=True, default='', max_length=128)),
                ('lease_expires_at', models.DateTimeField(blank=True, null=True)),
                ('progressed_at', models.DateTimeField(blank=True, null=True)),
                ('outage_since', models.DateTimeField(blank=True, help_text='Its store has been unreachable since then.', null=True)),
                ('outage_error', models.TextField(blank=True, default='')),
            ],
        ),
        migrations.CreateModel(
            name='Event',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('sequence', models.BigIntegerField(blank=True, help_text='Publication order; null until published.', null=True, unique=True)),
                ('event_id', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ('type', models.CharField(max_length=64)),
                ('version', models.PositiveSmallIntegerField(default=1)),
                ('aggregate_type', models.CharField(max_length=32)),
                ('aggregate_id', models.CharField(max_length=64)),
                ('payload', models.JSONField()),
                ('groups', models.JSONField(default=list, help_text='Logical group names, e.g. dispatch/north.')),
                ('occurred_at', models.DateTimeField()),
                ('published_at', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'ordering': ['sequence'],
                'indexes': [models.Index(condition=models.Q(('sequence', None)), fields=['id'], name='event_unpublished_idx'), models.Index(fields=['aggregate_type', 'aggregate_id', 'sequence'], name='event_aggregate_seq_idx'), models.Index(fields=['type', 'sequence'], name='event_type_seq_idx'), models.Index(fields=['occurred_at'], name='event_occurred_at_idx')],
            },
        ),
        migrations.CreateModel(
            name='EventGroup',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('group', models.CharField(max_length=100)),
                ('sequence', models.BigIntegerField()),
                ('type', models.CharField(max_length=64)),
                ('event', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='group_rows', to='events.event')),
            ],
            options={
                'indexes': [models.Index(fields=['group', 'sequence'], name='event_group_seq_idx'), models.Index(fields=['group', 'type', 'sequence'], name='event_group_type_seq_idx')],
                'constraints': [models.UniqueConstraint(fields=('group', 'event'), name='event_group_unique')],
            },
        ),
        migrations.CreateModel(
            name='FailedDelivery',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('attempts', models.PositiveIntegerField(default=1)),
                ('dead', models.BooleanField(default=False)),
                ('next_attempt_at', models.DateTimeField()),
                ('first_failed_at', models.DateTimeField()),
                ('last_failed_at', models.DateTimeField()),
                ('last_error', models.TextField(blank=True, default='')),
                ('event', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='failures', to='events.event')),
                ('subscriber', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='failures', to='events.subscriber')),
            ],
            options={
                'verbose_name_plural': 'failed deliveries',
                'indexes': [models.Index(condition=models.Q(('dead', False)), fields=['subscriber', 'next_attempt_at'], name='failed_delivery_due_idx')],
                'constraints': [models.UniqueConstraint(fields=('subscriber', 'event'), name='failed_delivery_once_per_subscriber')],
            },
        ),
    ]
