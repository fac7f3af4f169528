"""`GET /api/events`: the EventLog, oldest first, filtered to what the caller may see."""

import re

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from events.access import BeyondHorizon, check_cursor, events_page, visible_groups
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
        description=(
            "Published events as envelopes, oldest first. `next` continues after the last "
            "sequence, and no event can appear later behind it (sequences are given at "
            "publication). An `after` older than the retention horizon answers 410."
        ),
    )
    def get(self, request):
        query = EventQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        try:
            check_cursor(params["after"])
        except BeyondHorizon as exc:
            if exc.pruned:
                return Response(
                    {
                        "code": "gone",
                        "detail": f"Events after {params['after']} were removed by retention; "
                        "start again from after=0.",
                    },
                    status=status.HTTP_410_GONE,
                )
        aggregate = None
        if "aggregate" in params:
            match = AGGREGATE.match(params["aggregate"])
            aggregate = (match["type"], match["id"])
        page = events_page(
            visible_groups(request.user),
            after=params["after"],
            limit=params["limit"] + 1,
            event_type=params.get("type"),
            aggregate=aggregate,
        )
        more = len(page) > params["limit"]
        page = page[: params["limit"]]
        next_url = None
        if more:
            next_url = replace_query_param(request.build_absolute_uri(), "after", page[-1].sequence)
        return Response(
            {"next": next_url, "previous": None, "results": [envelope(e) for e in page]}
        )
