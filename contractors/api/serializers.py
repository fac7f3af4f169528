"""Request and response shapes for contractors and regions (camelCase, docs/api.md).

Serializers check shape and types only; domain rules (overlapping hours, timezones, ...) are the
services' job, so every entry point enforces the same ones.
"""

from datetime import UTC, datetime, timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from contractors.models import Contractor, ContractorStatus, ContractorType, Region, TimeOff
from contractors.services import Location, Window


def skill_list(**kwargs) -> serializers.ListField:
    return serializers.ListField(child=serializers.CharField(max_length=50), **kwargs)


class LocationSerializer(serializers.Serializer):
    lat = serializers.FloatField(min_value=-90, max_value=90)
    lng = serializers.FloatField(min_value=-180, max_value=180)
    address = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


@extend_schema_field(LocationSerializer)
class LocationField(serializers.Field):
    """A model's `lat`, `lng` and `address` as one read-only `location` object."""

    def __init__(self, **kwargs):
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, value) -> dict:
        return {"lat": value.lat, "lng": value.lng, "address": value.address}


def location_of(data: dict | None) -> Location | None:
    if data is None:
        return None
    return Location(lat=data["lat"], lng=data["lng"], address=data.get("address", ""))


@extend_schema_field(
    {"type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:00)?$", "example": "08:00"}
)
class ClockTimeField(serializers.TimeField):
    """A local time of day in whole minutes: "08:00" (also read as "08:00:00"), shown "08:00".

    Not OpenAPI's `format: time`, which is RFC 3339's full-time with seconds and an offset.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(format="%H:%M", input_formats=["%H:%M", "%H:%M:00"], **kwargs)


class WorkingHoursSerializer(serializers.Serializer):
    weekday = serializers.IntegerField(min_value=0, max_value=6, help_text="0 = Monday")
    # Whole minutes only ("08:00", "08:00:00"): seconds would be stored but not shown.
    start = ClockTimeField()
    end = ClockTimeField()

    def validate(self, attrs):
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": "must be after start."})
        return attrs


def windows_of(items: list[dict]) -> list[Window]:
    return [Window(item["weekday"], item["start"], item["end"]) for item in items]


class ContractorInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    type = serializers.ChoiceField(choices=ContractorType.choices)
    skills = skill_list(max_length=50, required=False, default=list)
    location = LocationSerializer()
    timezone = serializers.CharField(
        max_length=64,
        required=False,
        help_text="IANA Area/Location name (or UTC); the zone of the location when omitted.",
    )
    status = serializers.ChoiceField(
        choices=ContractorStatus.choices, required=False, default=ContractorStatus.ACTIVE
    )
    workingHours = WorkingHoursSerializer(many=True, required=False, max_length=50)


class ContractorPatchSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    type = serializers.ChoiceField(choices=ContractorType.choices, required=False)
    skills = skill_list(max_length=50, required=False)
    location = LocationSerializer(required=False)
    timezone = serializers.CharField(max_length=64, required=False)
    status = serializers.ChoiceField(choices=ContractorStatus.choices, required=False)


class TimeOffInputSerializer(serializers.Serializer):
    # Dates far outside any schedule are typos; years before 1000 would even be shown without
    # their leading zeros ("365-02-18T..."), which is not ISO 8601.
    EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
    MAX_YEARS_AHEAD = 10

    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")

    def validate(self, attrs):
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": "must be after start."})
        if attrs["start"] < self.EARLIEST:
            raise serializers.ValidationError({"start": "must be in 2000 or later."})
        if attrs["end"] > timezone.now() + timedelta(days=365 * self.MAX_YEARS_AHEAD):
            raise serializers.ValidationError(
                {"end": f"must be within {self.MAX_YEARS_AHEAD} years from now."}
            )
        return attrs


class TimeOffSerializer(serializers.ModelSerializer):
    class Meta:
        model = TimeOff
        fields = ["id", "start", "end", "reason"]


class ContractorSerializer(serializers.ModelSerializer):
    location = LocationField()
    workingHours = serializers.SerializerMethodField()
    timeOff = serializers.SerializerMethodField()
    averageRating = serializers.FloatField(
        source="average_rating", read_only=True, allow_null=True, help_text="Null until rated."
    )
    ratingCount = serializers.IntegerField(source="rating_count", read_only=True)
    userId = serializers.IntegerField(source="user_id", read_only=True, allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)

    class Meta:
        model = Contractor
        fields = [
            "id", "name", "type", "skills", "location", "region", "timezone", "status",
            "workingHours", "timeOff", "averageRating", "ratingCount", "userId",
            "createdAt", "updatedAt",
        ]  # fmt: skip

    @extend_schema_field(WorkingHoursSerializer(many=True))
    def get_workingHours(self, obj: Contractor) -> list:
        return WorkingHoursSerializer(obj.hours.all(), many=True).data

    @extend_schema_field(TimeOffSerializer(many=True))
    def get_timeOff(self, obj: Contractor) -> list:
        return TimeOffSerializer(obj.time_off.all(), many=True).data


class CenterSerializer(serializers.Serializer):
    lat = serializers.FloatField(min_value=-90, max_value=90)
    lng = serializers.FloatField(min_value=-180, max_value=180)


class RegionInputSerializer(serializers.Serializer):
    slug = serializers.SlugField(max_length=40)
    name = serializers.CharField(max_length=100)
    center = CenterSerializer()
    radiusMiles = serializers.FloatField(min_value=0.1, max_value=5000)


class RegionSerializer(serializers.ModelSerializer):
    center = serializers.SerializerMethodField()
    radiusMiles = serializers.FloatField(source="radius_miles")

    class Meta:
        model = Region
        fields = ["id", "slug", "name", "center", "radiusMiles"]

    @extend_schema_field(CenterSerializer)
    def get_center(self, region: Region) -> dict:
        return {"lat": region.center_lat, "lng": region.center_lng}
