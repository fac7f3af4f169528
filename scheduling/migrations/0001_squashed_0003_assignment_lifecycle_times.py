# The app's migrations up to scheduling 0003_assignment_lifecycle_times, squashed into one (generated from the models by
# makemigrations). `replaces` lets a database that applied all of them take this one as applied;
# see docs/operations.md, "Upgrading".

import django.contrib.postgres.fields.ranges
import django.core.validators
import django.db.models.deletion
from django.contrib.postgres.operations import BtreeGistExtension
import scheduling.models
from django.db import migrations, models


class Migration(migrations.Migration):
    replaces = [
        ("scheduling", "0001_initial"),
        ("scheduling", "0002_activerecommendationlist"),
        ("scheduling", "0003_assignment_lifecycle_times"),
    ]


    initial = True

    dependencies = [
        ('contractors', '0001_squashed_0003_drop_plaintext_api_tokens'),
    ]

    operations = [
        BtreeGistExtension(),
        migrations.CreateModel(
            name='Job',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('type', models.CharField(choices=[('flooring', 'Flooring'), ('tile', 'Tile'), ('carpet', 'Carpet')], max_length=16)),
                ('required_skills', models.JSONField(blank=True, default=list)),
                ('lat', models.FloatField(validators=[django.core.validators.MinValueValidator(-90), django.core.validators.MaxValueValidator(90)])),
                ('lng', models.FloatField(validators=[django.core.validators.MinValueValidator(-180), django.core.validators.MaxValueValidator(180)])),
                ('address', models.CharField(blank=True, default='', max_length=300)),
                ('region', models.CharField(db_index=True, default='default', max_length=40)),
                ('desired_date', models.DateField()),
                ('duration_minutes', models.PositiveIntegerField(validators=[django.core.validators.MinValueValidator(30), django.core.validators.MaxValueValidator(480)])),
                ('priority', models.CharField(choices=[('low', 'Low'), ('normal', 'Normal'), ('high', 'High'), ('urgent', 'Urgent')], default='normal', max_length=16)),
                ('status', models.CharField(choices=[('open', 'Open'), ('assigned', 'Assigned'), ('in_progress', 'In progress'), ('completed', 'Completed'), ('cancelled', 'Cancelled')], default='open', max_length=16)),
                ('cancel_reason', models.CharField(blank=True, default='', max_length=500)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['id'],
                'indexes': [models.Index(fields=['status', 'desired_date'], name='scheduling__status_3b340e_idx')],
                'constraints': [models.CheckConstraint(condition=models.Q(('duration_minutes__gte', 30), ('duration_minutes__lte', 480)), name='job_duration_range')],
            },
        ),
        migrations.CreateModel(
            name='ActiveRecommendationList',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('limit', models.PositiveSmallIntegerField()),
                ('ranking', models.JSONField(default=list, help_text='[{rank, contractorId, score}]')),
                ('activated_at', models.DateTimeField()),
                ('expires_at', models.DateTimeField(db_index=True)),
                ('job', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='active_list', to='scheduling.job')),
            ],
        ),
        migrations.CreateModel(
            name='Assignment',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('start', models.DateTimeField()),
                ('end', models.DateTimeField()),
                ('status', models.CharField(choices=[('scheduled', 'Scheduled'), ('in_progress', 'In progress'), ('completed', 'Completed'), ('cancelled', 'Cancelled')], default='scheduled', max_length=16)),
                ('score', models.FloatField(blank=True, null=True)),
                ('score_breakdown', models.JSONField(blank=True, default=dict)),
                ('started_at', models.DateTimeField(blank=True, null=True)),
                ('completed_at', models.DateTimeField(blank=True, null=True)),
                ('notes', models.TextField(blank=True, default='', help_text='The completion notes.')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('contractor', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='assignments', to='contractors.contractor')),
                ('job', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='assignments', to='scheduling.job')),
            ],
            options={
                'ordering': ['start'],
                'indexes': [models.Index(fields=['contractor', 'status', 'start'], name='scheduling__contrac_6342f1_idx')],
                'constraints': [models.CheckConstraint(condition=models.Q(('end__gt', models.F('start'))), name='slot_not_empty'), models.UniqueConstraint(condition=models.Q(('status__in', ['scheduled', 'in_progress'])), fields=('job',), name='one_live_assignment_per_job'), scheduling.models.PostgresExclusionConstraint(condition=models.Q(('status__in', ['scheduled', 'in_progress'])), expressions=[('contractor', '='), (scheduling.models.TsTzRange('start', 'end', django.contrib.postgres.fields.ranges.RangeBoundary()), '&&')], name='no_overlapping_live_slots')],
            },
        ),
    ]
