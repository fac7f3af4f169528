# The app's migrations up to contractors 0003_drop_plaintext_api_tokens, squashed into one (generated from the models by
# makemigrations). `replaces` lets a database that applied all of them take this one as applied;
# see docs/operations.md, "Upgrading".

import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    replaces = [
        ("contractors", "0001_initial"),
        ("contractors", "0002_contractor_schedule_version"),
        ("contractors", "0003_drop_plaintext_api_tokens"),
    ]


    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Contractor',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=200)),
                ('type', models.CharField(choices=[('flooring', 'Flooring'), ('tile', 'Tile'), ('carpet', 'Carpet'), ('multi', 'Multi-trade')], max_length=16)),
                ('skills', models.JSONField(blank=True, default=list)),
                ('lat', models.FloatField(validators=[django.core.validators.MinValueValidator(-90), django.core.validators.MaxValueValidator(90)])),
                ('lng', models.FloatField(validators=[django.core.validators.MinValueValidator(-180), django.core.validators.MaxValueValidator(180)])),
                ('address', models.CharField(blank=True, default='', max_length=300)),
                ('region', models.CharField(db_index=True, default='default', max_length=40)),
                ('timezone', models.CharField(default='UTC', max_length=64)),
                ('status', models.CharField(choices=[('active', 'Active'), ('inactive', 'Inactive'), ('on_leave', 'On leave')], default='active', max_length=16)),
                ('average_rating', models.FloatField(blank=True, null=True)),
                ('rating_count', models.PositiveIntegerField(default=0)),
                ('schedule_version', models.PositiveBigIntegerField(default=0, help_text='Bumped in the same transaction as any change to hours, time off, status or bookings; cached availability is keyed by it, so a cache entry is never stale.')),
                ('deleted_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('user', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='contractor', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['id'],
            },
        ),
        migrations.CreateModel(
            name='Rating',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('job_id', models.BigIntegerField(unique=True)),
                ('stars', models.PositiveSmallIntegerField(validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(5)])),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('contractor', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='ratings', to='contractors.contractor')),
            ],
        ),
        migrations.CreateModel(
            name='Region',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('slug', models.SlugField(max_length=40, unique=True)),
                ('name', models.CharField(max_length=100)),
                ('center_lat', models.FloatField(validators=[django.core.validators.MinValueValidator(-90), django.core.validators.MaxValueValidator(90)])),
                ('center_lng', models.FloatField(validators=[django.core.validators.MinValueValidator(-180), django.core.validators.MaxValueValidator(180)])),
                ('radius_miles', models.FloatField(validators=[django.core.validators.MinValueValidator(0.1)])),
                ('watchers', models.ManyToManyField(blank=True, help_text='Dispatchers who watch this region (a dispatcher with none watches all).', related_name='watched_regions', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['slug'],
            },
        ),
        migrations.CreateModel(
            name='TimeOff',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('start', models.DateTimeField()),
                ('end', models.DateTimeField()),
                ('reason', models.CharField(blank=True, default='', max_length=200)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('contractor', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='time_off', to='contractors.contractor')),
            ],
            options={
                'ordering': ['start'],
            },
        ),
        migrations.CreateModel(
            name='WorkingHours',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('weekday', models.PositiveSmallIntegerField(help_text='0 = Monday', validators=[django.core.validators.MaxValueValidator(6)])),
                ('start', models.TimeField()),
                ('end', models.TimeField()),
                ('contractor', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='hours', to='contractors.contractor')),
            ],
            options={
                'ordering': ['weekday', 'start'],
            },
        ),
        migrations.AddIndex(
            model_name='contractor',
            index=models.Index(fields=['status', 'type'], name='contractors_status_49cd37_idx'),
        ),
        migrations.AddConstraint(
            model_name='rating',
            constraint=models.CheckConstraint(condition=models.Q(('stars__gte', 1), ('stars__lte', 5)), name='stars_1_to_5'),
        ),
        migrations.AddConstraint(
            model_name='timeoff',
            constraint=models.CheckConstraint(condition=models.Q(('end__gt', models.F('start'))), name='time_off_not_empty'),
        ),
        migrations.AddConstraint(
            model_name='workinghours',
            constraint=models.CheckConstraint(condition=models.Q(('end__gt', models.F('start'))), name='hours_not_empty'),
        ),
        migrations.AddConstraint(
            model_name='workinghours',
            constraint=models.CheckConstraint(condition=models.Q(('weekday__lte', 6)), name='hours_weekday_range'),
        ),
    ]
