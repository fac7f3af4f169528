"""Jobs and assignments.

Invariants: a job has at most one live assignment (a partial unique constraint); a contractor
never has two live assignments whose half-open slots overlap (a PostgreSQL exclusion constraint,
re-checked by the booking service under the contractor's row lock, which also enforces the
buffer and travel time that the constraint cannot express).
"""

from datetime import datetime

from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import RangeBoundary, RangeOperators
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Func, Q

from contractors.models import DEFAULT_REGION, LAT_VALIDATORS, LNG_VALIDATORS, Contractor

MIN_DURATION_MINUTES = 30
MAX_DURATION_MINUTES = 8 * 60
# How far ahead jobs may be wanted and booked; beyond it is a typo, not a plan.
MAX_DAYS_AHEAD = 365


class JobType(models.TextChoices):
    FLOORING = "flooring", "Flooring"
    TILE = "tile", "Tile"
    CARPET = "carpet", "Carpet"


class Priority(models.TextChoices):
    LOW = "low", "Low"
    NORMAL = "normal", "Normal"
    HIGH = "high", "High"
    URGENT = "urgent", "Urgent"


class JobStatus(models.TextChoices):
    OPEN = "open", "Open"
    ASSIGNED = "assigned", "Assigned"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


class AssignmentStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


LIVE_ASSIGNMENT = [AssignmentStatus.SCHEDULED, AssignmentStatus.IN_PROGRESS]
# Assignments that keep (some of) the contractor's time: the live ones, and completed ones for
# the buffer after their completion.
OCCUPYING_ASSIGNMENT = [*LIVE_ASSIGNMENT, AssignmentStatus.COMPLETED]


def occupied(
    start: datetime,
    end: datetime,
    started_at: datetime | None = None,
    completed_at: datetime | None = None,
) -> tuple[datetime, datetime]:
    """The time an assignment actually keeps from its contractor, before padding.

    The booked slot, from the earlier of its start and the moment work started; a completed
    assignment ends at its completion (an early completion frees the rest of the slot, the
    buffer and travel still apply after it)."""
    begin = min(start, started_at) if started_at is not None else start
    if completed_at is not None:
        return begin, max(begin, completed_at)
    return begin, end


def occupying_between(after: datetime, before: datetime) -> models.Q:
    """Assignments whose kept time (`occupied`) may meet [after, before), as a filter.

    The kept time starts at the earlier of the booked start and the moment work started, so a
    job started ahead of its slot occupies days its booking does not: filtering by the booked
    slot alone would miss it (a cached day computed without it). A superset is fine: callers
    check the kept time itself."""
    begins_before = models.Q(start__lt=before) | models.Q(started_at__lt=before)
    ends_after = models.Q(end__gt=after) | models.Q(completed_at__gt=after)
    return begins_before & ends_after


class Job(models.Model):
    type = models.CharField(max_length=16, choices=JobType.choices)
    required_skills = models.JSONField(default=list, blank=True)
    lat = models.FloatField(validators=LAT_VALIDATORS)
    lng = models.FloatField(validators=LNG_VALIDATORS)
    address = models.CharField(max_length=300, blank=True, default="")
    region = models.CharField(max_length=40, default=DEFAULT_REGION, db_index=True)
    desired_date = models.DateField()
    duration_minutes = models.PositiveIntegerField(
        validators=[
            MinValueValidator(MIN_DURATION_MINUTES),
            MaxValueValidator(MAX_DURATION_MINUTES),
        ]
    )
    priority = models.CharField(max_length=16, choices=Priority.choices, default=Priority.NORMAL)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.OPEN)
    cancel_reason = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["status", "desired_date"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(duration_minutes__gte=MIN_DURATION_MINUTES)
                & Q(duration_minutes__lte=MAX_DURATION_MINUTES),
                name="job_duration_range",
            ),
        ]

    def __str__(self) -> str:
        return f"Job {self.pk} ({self.type}, {self.desired_date})"


class TsTzRange(Func):
    function = "TSTZRANGE"
    output_field = models.DateTimeField()


class PostgresExclusionConstraint(ExclusionConstraint):
    """An exclusion constraint that the embedded default (SQLite) simply does not create.

    The embedded default serves one process, and the booking service checks overlaps under a
    lock there too; PostgreSQL, the production store, enforces the rule in the database.
    """

    def constraint_sql(self, model, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return None
        return super().constraint_sql(model, schema_editor)

    def create_sql(self, model, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return None
        return super().create_sql(model, schema_editor)

    def remove_sql(self, model, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return None
        return super().remove_sql(model, schema_editor)

    def validate(self, *args, **kwargs):
        # Validated by the database and the booking service, not by model forms.
        return None


class Assignment(models.Model):
    job = models.ForeignKey(Job, on_delete=models.PROTECT, related_name="assignments")
    contractor = models.ForeignKey(Contractor, on_delete=models.PROTECT, related_name="assignments")
    start = models.DateTimeField()
    end = models.DateTimeField()
    status = models.CharField(
        max_length=16, choices=AssignmentStatus.choices, default=AssignmentStatus.SCHEDULED
    )
    score = models.FloatField(null=True, blank=True)
    score_breakdown = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    notes = models.TextField(blank=True, default="", help_text="The completion notes.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["start"]
        indexes = [models.Index(fields=["contractor", "status", "start"])]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="slot_not_empty"),
            models.UniqueConstraint(
                fields=["job"],
                condition=Q(status__in=LIVE_ASSIGNMENT),
                name="one_live_assignment_per_job",
            ),
            PostgresExclusionConstraint(
                name="no_overlapping_live_slots",
                expressions=[
                    ("contractor", RangeOperators.EQUAL),
                    (TsTzRange("start", "end", RangeBoundary()), RangeOperators.OVERLAPS),
                ],
                condition=Q(status__in=LIVE_ASSIGNMENT),
            ),
        ]

    def __str__(self) -> str:
        return f"Assignment {self.pk}: job {self.job_id} -> contractor {self.contractor_id}"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_ASSIGNMENT

    @property
    def occupied(self) -> tuple[datetime, datetime]:
        return occupied(self.start, self.end, self.started_at, self.completed_at)


class ActiveRecommendationList(models.Model):
    """A job's recommendation list that a dispatcher is looking at: re-ranked live (and
    announced with RecommendationsUpdated) until the job is assigned or cancelled or it expires."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="active_list")
    limit = models.PositiveSmallIntegerField()
    ranking = models.JSONField(default=list, help_text="[{rank, contractorId, score}]")
    activated_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"Active recommendations for job {self.job_id}"
