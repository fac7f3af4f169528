"""Request and response shapes for jobs, bookings, ratings and availability (camelCase)."""

from datetime import timedelta

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from contractors.api.serializers import LocationField, LocationSerializer, skill_list
from scheduling.models import (
    MAX_DAYS_AHEAD,
    MAX_DURATION_MINUTES,
    MIN_DURATION_MINUTES,
    Assignment,
    Job,
    JobStatus,
    JobType,
    Priority,
)
from scheduling.services.lifecycle import MAX_NOTES_LENGTH

MAX_ID = 2**63 - 1


class AwareDateTimeField(serializers.DateTimeField):
    """A date-time that says which instant it is: a value without a UTC offset is refused
    rather than read as UTC (a dispatcher's "10:00" is rarely 10:00 UTC)."""

    def to_internal_value(self, value):
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None  # malformed: the parent field says so
            if parsed is not None and parsed.tzinfo is None:
                raise serializers.ValidationError(
                    'has no UTC offset; add one, e.g. "Z" or "+01:00" ("2026-12-01T14:00:00Z").'
                )
        return super().to_internal_value(value)


class TimeSlotSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class AssignmentSerializer(serializers.ModelSerializer):
    jobId = serializers.IntegerField(source="job_id")
    contractorId = serializers.IntegerField(source="contractor_id")
    scheduledTimeSlot = serializers.SerializerMethodField()
    scoreBreakdown = serializers.JSONField(source="score_breakdown")
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)
    completedAt = serializers.DateTimeField(source="completed_at", allow_null=True)

    class Meta:
        model = Assignment
        fields = [
            "id", "jobId", "contractorId", "scheduledTimeSlot", "status", "score",
            "scoreBreakdown", "startedAt", "completedAt", "notes",
        ]  # fmt: skip

    @extend_schema_field(TimeSlotSerializer)
    def get_scheduledTimeSlot(self, obj: Assignment) -> dict:
        return TimeSlotSerializer({"start": obj.start, "end": obj.end}).data


class JobSerializer(serializers.ModelSerializer):
    requiredSkills = skill_list(source="required_skills")
    location = LocationField()
    desiredDate = serializers.DateField(source="desired_date")
    durationMinutes = serializers.IntegerField(source="duration_minutes")
    cancelReason = serializers.CharField(source="cancel_reason")
    assignment = serializers.SerializerMethodField()
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")

    class Meta:
        model = Job
        fields = [
            "id", "type", "requiredSkills", "location", "region", "desiredDate",
            "durationMinutes", "priority", "status", "assignment", "cancelReason",
            "createdAt", "updatedAt",
        ]  # fmt: skip

    @extend_schema_field(AssignmentSerializer(allow_null=True))
    def get_assignment(self, obj: Job) -> dict | None:
        """The live assignment, else the completed one, else null."""
        assignments = [a for a in obj.assignments.all() if a.status != "cancelled"]
        return AssignmentSerializer(assignments[0]).data if assignments else None


class JobInputSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=JobType.choices)
    requiredSkills = skill_list(max_length=50, required=False, default=list)
    location = LocationSerializer()
    # The date's rules (not past, not too far ahead) are the service's, for the admin too.
    desiredDate = serializers.DateField()
    durationMinutes = serializers.IntegerField(
        min_value=MIN_DURATION_MINUTES, max_value=MAX_DURATION_MINUTES
    )
    priority = serializers.ChoiceField(choices=Priority.choices, required=False, default="normal")


class JobPatchSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=JobType.choices, required=False)
    requiredSkills = skill_list(max_length=50, required=False)
    location = LocationSerializer(required=False)
    desiredDate = serializers.DateField(required=False)
    durationMinutes = serializers.IntegerField(
        min_value=MIN_DURATION_MINUTES, max_value=MAX_DURATION_MINUTES, required=False
    )
    priority = serializers.ChoiceField(choices=Priority.choices, required=False)


class JobFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=JobStatus.choices, required=False)
    region = serializers.SlugField(required=False)
    type = serializers.ChoiceField(choices=JobType.choices, required=False)
    date = serializers.DateField(required=False, help_text="Desired date (YYYY-MM-DD).")
    bookedFrom = AwareDateTimeField(
        required=False, help_text="Only jobs whose booked slot ends after this instant."
    )
    bookedTo = AwareDateTimeField(
        required=False, help_text="Only jobs whose booked slot starts before this instant."
    )

    def validate(self, attrs):
        start, end = attrs.get("bookedFrom"), attrs.get("bookedTo")
        if start is not None and end is not None and end <= start:
            raise serializers.ValidationError({"bookedTo": "must be after bookedFrom."})
        return attrs


def _check_slot(attrs: dict) -> dict:
    if attrs.get("end") is not None and attrs["end"] <= attrs["start"]:
        raise serializers.ValidationError({"end": "must be after start."})
    return attrs


END_HELP = "Optional: the start plus the job's duration when omitted."


class AssignInputSerializer(serializers.Serializer):
    contractorId = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    start = AwareDateTimeField()
    end = AwareDateTimeField(required=False, help_text=END_HELP)

    def validate(self, attrs):
        return _check_slot(attrs)


class RescheduleInputSerializer(serializers.Serializer):
    start = AwareDateTimeField()
    end = AwareDateTimeField(required=False, help_text=END_HELP)
    contractorId = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)

    def validate(self, attrs):
        return _check_slot(attrs)


class CancelInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class CompleteInputSerializer(serializers.Serializer):
    notes = serializers.CharField(
        max_length=MAX_NOTES_LENGTH, required=False, allow_blank=True, default=""
    )


class RatingInputSerializer(serializers.Serializer):
    rating = serializers.IntegerField(min_value=1, max_value=5)


class RatingSerializer(serializers.Serializer):
    jobId = serializers.IntegerField()
    contractorId = serializers.IntegerField()
    rating = serializers.IntegerField()


class AvailabilityQuerySerializer(serializers.Serializer):
    MAX_DAYS = 60

    # `from` is a Python keyword, hence the declared name; the query parameter is `from`.
    from_ = serializers.DateField(help_text="First local day (YYYY-MM-DD).")
    to = serializers.DateField(help_text="Last local day, inclusive (YYYY-MM-DD).")
    duration = serializers.IntegerField(
        min_value=MIN_DURATION_MINUTES, max_value=MAX_DURATION_MINUTES, required=False,
        default=60, help_text="Minutes; slots are starts where this whole duration fits.",
    )  # fmt: skip

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields

    def validate(self, attrs):
        if attrs["from"] > attrs["to"]:
            raise serializers.ValidationError({"to": "must not be before from."})
        if (attrs["to"] - attrs["from"]).days + 1 > self.MAX_DAYS:
            raise serializers.ValidationError({"to": f"at most {self.MAX_DAYS} days after from."})
        if attrs["to"] > timezone.now().date() + timedelta(days=MAX_DAYS_AHEAD):
            raise serializers.ValidationError({"to": f"is more than {MAX_DAYS_AHEAD} days ahead."})
        return attrs


class AvailabilitySerializer(serializers.Serializer):
    contractorId = serializers.IntegerField()
    windows = TimeSlotSerializer(many=True)
    slots = TimeSlotSerializer(many=True)


class RecommendationQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=50, required=False, default=5)


class ScoreBreakdownSerializer(serializers.Serializer):
    availability = serializers.FloatField()
    rating = serializers.FloatField()
    distance = serializers.FloatField()


class RecommendationSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    contractorId = serializers.IntegerField()
    contractorName = serializers.CharField()
    score = serializers.FloatField()
    scoreBreakdown = ScoreBreakdownSerializer()
    distanceMiles = serializers.FloatField()
    slots = TimeSlotSerializer(many=True)
    explanation = serializers.CharField()


class RecommendationListSerializer(serializers.Serializer):
    jobId = serializers.IntegerField()
    recommendations = RecommendationSerializer(many=True)
