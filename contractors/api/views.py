"""Contractors and regions over HTTP. Thin: parse, call a service, serialize."""

from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from contractors import services
from contractors.api.permissions import (
    IsAdmin,
    IsDispatcher,
    IsDispatcherOrContractor,
    is_staff_or_dispatcher,
    own_contractor_id,
)
from contractors.api.serializers import (
    ContractorInputSerializer,
    ContractorPatchSerializer,
    ContractorSerializer,
    RegionInputSerializer,
    RegionSerializer,
    TimeOffInputSerializer,
    TimeOffSerializer,
    WorkingHoursSerializer,
    location_of,
    windows_of,
)
from contractors.models import Contractor, ContractorStatus, ContractorType, Region, TimeOff
from contractors.selectors import live_contractors

CONFLICT = OpenApiResponse(description="Conflicts with the current state (`code` says which).")


def contractors_for(request) -> QuerySet[Contractor]:
    """What the caller may read: everything for dispatchers, only itself for a contractor."""
    queryset = live_contractors().prefetch_related(
        "hours", Prefetch("time_off", queryset=TimeOff.objects.order_by("start"))
    )
    if is_staff_or_dispatcher(request):
        return queryset
    return queryset.filter(pk=own_contractor_id(request))


def readable_contractor(request, contractor_id: int) -> Contractor:
    # A contractor gets 404 for any contractor but itself: a 403 would tell which ids exist.
    return get_object_or_404(contractors_for(request), pk=contractor_id)


def _write_permissions(request) -> list:
    return [IsAuthenticated(), IsDispatcher()]


class ContractorFilterSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=ContractorType.choices, required=False)
    status = serializers.ChoiceField(choices=ContractorStatus.choices, required=False)
    region = serializers.SlugField(required=False)
    skill = serializers.CharField(max_length=50, required=False)


class ContractorListView(GenericAPIView):
    serializer_class = ContractorSerializer

    def get_permissions(self):
        if self.request.method == "POST":
            return _write_permissions(self.request)
        return [IsAuthenticated(), IsDispatcherOrContractor()]

    @extend_schema(
        parameters=[ContractorFilterSerializer], responses=ContractorSerializer(many=True)
    )
    def get(self, request):
        filters = ContractorFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        queryset = contractors_for(request)
        for field in ("type", "status", "region"):
            if field in filters.validated_data:
                queryset = queryset.filter(**{field: filters.validated_data[field]})
        skill = filters.validated_data.get("skill")
        if skill:
            # Portable JSON containment (contractors/lookups.py).
            queryset = queryset.filter(skills__contains_all=[skill.lower()])
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(ContractorSerializer(page, many=True).data)

    @extend_schema(request=ContractorInputSerializer, responses={201: ContractorSerializer})
    def post(self, request):
        data = _validated(ContractorInputSerializer, request.data)
        hours = data.get("workingHours")
        contractor = services.create_contractor(
            name=data["name"],
            type=data["type"],
            skills=data["skills"],
            location=location_of(data["location"]),
            timezone_name=data.get("timezone"),
            status=data["status"],
            working_hours=windows_of(hours) if hours is not None else None,
        )
        return Response(
            ContractorSerializer(contractors_for(request).get(pk=contractor.pk)).data,
            status=status.HTTP_201_CREATED,
        )


class ContractorDetailView(GenericAPIView):
    serializer_class = ContractorSerializer

    def get_permissions(self):
        if self.request.method in ("PATCH", "DELETE"):
            return _write_permissions(self.request)
        return [IsAuthenticated(), IsDispatcherOrContractor()]

    def get(self, request, pk: int):
        return Response(ContractorSerializer(readable_contractor(request, pk)).data)

    @extend_schema(request=ContractorPatchSerializer, responses=ContractorSerializer)
    def patch(self, request, pk: int):
        get_object_or_404(live_contractors(), pk=pk)
        data = _validated(ContractorPatchSerializer, request.data)
        services.update_contractor(
            contractor_id=pk,
            name=data.get("name"),
            type=data.get("type"),
            skills=data.get("skills"),
            location=location_of(data.get("location")),
            timezone_name=data.get("timezone"),
            status=data.get("status"),
        )
        return Response(ContractorSerializer(readable_contractor(request, pk)).data)

    @extend_schema(responses={204: None, 409: CONFLICT})
    def delete(self, request, pk: int):
        get_object_or_404(live_contractors(), pk=pk)
        services.delete_contractor(contractor_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WorkingHoursView(GenericAPIView):
    serializer_class = WorkingHoursSerializer
    pagination_class = None  # the answer is the whole week, a plain list

    def get_permissions(self):
        return _write_permissions(self.request)

    @extend_schema(
        request=WorkingHoursSerializer(many=True), responses=WorkingHoursSerializer(many=True)
    )
    def put(self, request, pk: int):
        get_object_or_404(live_contractors(), pk=pk)
        serializer = WorkingHoursSerializer(data=request.data, many=True, max_length=50)
        serializer.is_valid(raise_exception=True)
        contractor = services.set_working_hours(
            contractor_id=pk, windows=windows_of(serializer.validated_data)
        )
        return Response(WorkingHoursSerializer(contractor.hours.all(), many=True).data)


class TimeOffListView(GenericAPIView):
    serializer_class = TimeOffSerializer

    def get_permissions(self):
        return _write_permissions(self.request)

    @extend_schema(request=TimeOffInputSerializer, responses={201: TimeOffSerializer})
    def post(self, request, pk: int):
        get_object_or_404(live_contractors(), pk=pk)
        data = _validated(TimeOffInputSerializer, request.data)
        entry = services.add_time_off(
            contractor_id=pk, start=data["start"], end=data["end"], reason=data["reason"]
        )
        return Response(TimeOffSerializer(entry).data, status=status.HTTP_201_CREATED)


class TimeOffDetailView(GenericAPIView):
    serializer_class = TimeOffSerializer

    def get_permissions(self):
        return _write_permissions(self.request)

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int, time_off_id: int):
        get_object_or_404(live_contractors(), pk=pk)
        services.remove_time_off(contractor_id=pk, time_off_id=time_off_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RegionListView(GenericAPIView):
    serializer_class = RegionSerializer
    pagination_class = None

    def get_permissions(self):
        if self.request.method == "POST":
            return [IsAuthenticated(), IsAdmin()]
        return [IsAuthenticated()]

    @extend_schema(responses=RegionSerializer(many=True))
    def get(self, request):
        return Response(RegionSerializer(Region.objects.all(), many=True).data)

    @extend_schema(request=RegionInputSerializer, responses={201: RegionSerializer, 409: CONFLICT})
    def post(self, request):
        data = _validated(RegionInputSerializer, request.data)
        region = services.create_region(
            slug=data["slug"],
            name=data["name"],
            center_lat=data["center"]["lat"],
            center_lng=data["center"]["lng"],
            radius_miles=data["radiusMiles"],
        )
        return Response(RegionSerializer(region).data, status=status.HTTP_201_CREATED)


def _validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
