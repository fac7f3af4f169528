"""`GET /api/events`: the EventLog, oldest first, filtered to what the caller may see."""

import re

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from events.access import visible_events
from events.catalog import EVENT_TYPE_CHOICES
from events.envelope import envelope

AGGREGATE = re.compile(r"^(?P<type>[a-z_]{1,32}):(?P<id>[A-Za-z0-9_-]{1,64})$")


class EventQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(min_value=0, max_value=2**63 - 1, required=False, default=0)
    type = serializers.ChoiceField(choices=EVENT_TYPE_CHOICES, required=False)
    aggregate = serializers.CharField(required=False, help_text="e.g. job:17 or contractor:42")
    limit = serializers.IntegerField(min_value=1, max_value=1000, required=False, default=100)

    def validate_aggregate(self, value: str) -> str:
        if not AGGREGATE.match(value):
            raise serializers.ValidationError("must look like job:17 or contractor:42.")
        return value


class EventListView(GenericAPIView):
    permission_classes = [IsAuthenticated]
    pagination_class = None

    @extend_schema(
        parameters=[EventQuerySerializer],
        responses=inline_serializer(
            "EventPage",
            {
                "next": serializers.CharField(allow_null=True),
                "previous": serializers.CharField(allow_null=True),
                "results": serializers.ListField(child=serializers.JSONField()),
            },
        ),
        description="Envelopes as in docs/events.md. `next` continues after the last sequence.",
    )
    def get(self, request):
        query = EventQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        events = visible_events(request.user).filter(sequence__gt=params["after"])
        if "type" in params:
            events = events.filter(type=params["type"])
        if "aggregate" in params:
            match = AGGREGATE.match(params["aggregate"])
            events = events.filter(aggregate_type=match["type"], aggregate_id=match["id"])
        page = list(events.order_by("sequence")[: params["limit"] + 1])
        more = len(page) > params["limit"]
        page = page[: params["limit"]]
        next_url = None
        if more:
            next_url = replace_query_param(request.build_absolute_uri(), "after", page[-1].sequence)
        return Response(
            {"next": next_url, "previous": None, "results": [envelope(e) for e in page]}
        )
