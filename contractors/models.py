"""Contractors, their weekly hours, time off, ratings, and regions.

Invariants kept here: a contractor's region is derived from its location (never typed in);
weekly windows of one weekday never overlap and are never empty; time off ends after it starts;
one rating per job, 1 to 5 stars. Writes go through `contractors.services` only.
"""

from datetime import time
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce

import contractors.lookups  # noqa: F401  (registers JSONField's `contains_all`)

DEFAULT_REGION = "default"
# An unrated contractor ranks as if rated this (scheduling.scoring: half the rating score).
UNRATED_AVERAGE = 2.5
LAT_VALIDATORS = [MinValueValidator(-90), MaxValueValidator(90)]
LNG_VALIDATORS = [MinValueValidator(-180), MaxValueValidator(180)]


class Region(models.Model):
    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=100)
    center_lat = models.FloatField(validators=LAT_VALIDATORS)
    center_lng = models.FloatField(validators=LNG_VALIDATORS)
    radius_miles = models.FloatField(validators=[MinValueValidator(0.1)])
    watchers = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="watched_regions",
        help_text="Dispatchers who watch this region (a dispatcher with none watches all).",
    )

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class ContractorType(models.TextChoices):
    FLOORING = "flooring", "Flooring"
    TILE = "tile", "Tile"
    CARPET = "carpet", "Carpet"
    MULTI = "multi", "Multi-trade"


class ContractorStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    INACTIVE = "inactive", "Inactive"
    ON_LEAVE = "on_leave", "On leave"


# Who can be recommended: active and not deleted.
LIVE = Q(status=ContractorStatus.ACTIVE, deleted_at__isnull=True)
# Rating order, unrated counted as UNRATED_AVERAGE: the order in which a ranking reads the
# candidates far from a job (scheduling.recommendations), by an index of its own.
RATING_KEY = Coalesce(F("average_rating"), Value(UNRATED_AVERAGE))


class Contractor(models.Model):
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=16, choices=ContractorType.choices)
    skills = models.JSONField(default=list, blank=True)
    lat = models.FloatField(validators=LAT_VALIDATORS)
    lng = models.FloatField(validators=LNG_VALIDATORS)
    address = models.CharField(max_length=300, blank=True, default="")
    region = models.CharField(max_length=40, default=DEFAULT_REGION, db_index=True)
    timezone = models.CharField(max_length=64, default="UTC")
    status = models.CharField(
        max_length=16, choices=ContractorStatus.choices, default=ContractorStatus.ACTIVE
    )
    average_rating = models.FloatField(null=True, blank=True)
    rating_count = models.PositiveIntegerField(default=0)
    schedule_version = models.PositiveBigIntegerField(
        default=0,
        help_text="Bumped in the same transaction as any change to hours, time off, status or "
        "bookings; cached availability is keyed by it, so a cache entry is never stale.",
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="contractor",
    )
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["status", "type"]),
            # A ranking's two reads (scheduling.recommendations): the candidates near a job
            # by place, the others by rating.
            models.Index(fields=["lat", "lng"], name="contractor_live_place", condition=LIVE),
            models.Index(RATING_KEY.desc(), F("id"), name="contractor_live_rating", condition=LIVE),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def matches_type(self, job_type: str) -> bool:
        return self.type == ContractorType.MULTI or self.type == job_type

    def has_skills(self, required: list[str]) -> bool:
        return set(required) <= set(self.skills)


class WorkingHours(models.Model):
    """One window on one weekday, in the contractor's local time; half-open [start, end)."""

    contractor = models.ForeignKey(Contractor, on_delete=models.CASCADE, related_name="hours")
    weekday = models.PositiveSmallIntegerField(
        validators=[MaxValueValidator(6)], help_text="0 = Monday"
    )
    start = models.TimeField()
    end = models.TimeField()

    class Meta:
        ordering = ["weekday", "start"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="hours_not_empty"),
            models.CheckConstraint(condition=Q(weekday__lte=6), name="hours_weekday_range"),
        ]

    def __str__(self) -> str:
        return f"{self.weekday} {self.start:%H:%M}-{self.end:%H:%M}"


DEFAULT_WORKING_HOURS = [(weekday, time(8, 0), time(17, 0)) for weekday in range(5)]


class TimeOff(models.Model):
    contractor = models.ForeignKey(Contractor, on_delete=models.CASCADE, related_name="time_off")
    start = models.DateTimeField()
    end = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["start"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="time_off_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.contractor_id}: {self.start} - {self.end}"


class Rating(models.Model):
    """The job's rating of its contractor. `job_id` is scheduling's job (no import: see STYLE)."""

    job_id = models.BigIntegerField(unique=True)
    contractor = models.ForeignKey(Contractor, on_delete=models.PROTECT, related_name="ratings")
    stars = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(stars__gte=1, stars__lte=5), name="stars_1_to_5"),
        ]

    def __str__(self) -> str:
        return f"job {self.job_id}: {self.stars} stars for {self.contractor_id}"
