"""Jobs, bookings, ratings and availability over HTTP. Thin: parse, call a service, serialize."""

from datetime import timedelta

from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from contractors.api.permissions import (
    IsDispatcher,
    IsDispatcherOrContractor,
    is_staff_or_dispatcher,
    own_contractor_id,
)
from contractors.api.serializers import location_of
from contractors.api.views import readable_contractor
from scheduling import services
from scheduling.api.serializers import (
    AssignInputSerializer,
    AssignmentSerializer,
    AvailabilityQuerySerializer,
    AvailabilitySerializer,
    CancelInputSerializer,
    CompleteInputSerializer,
    JobFilterSerializer,
    JobInputSerializer,
    JobPatchSerializer,
    JobSerializer,
    RatingInputSerializer,
    RatingSerializer,
    RecommendationListSerializer,
    RecommendationQuerySerializer,
    RescheduleInputSerializer,
)
from scheduling.models import MAX_DURATION_MINUTES, Assignment, AssignmentStatus, Job
from scheduling.selectors import availability

DISPATCHERS_ONLY = [IsAuthenticated, IsDispatcher]
CONFLICT = OpenApiResponse(description="Conflicts with the current state (`code` says which).")


def jobs_for(request) -> QuerySet[Job]:
    """Everything for dispatchers; a contractor's own booked and completed jobs otherwise."""
    queryset = Job.objects.prefetch_related(
        Prefetch("assignments", queryset=Assignment.objects.order_by("-created_at"))
    )
    if is_staff_or_dispatcher(request):
        return queryset
    return queryset.filter(
        assignments__contractor_id=own_contractor_id(request),
        assignments__status__in=[
            AssignmentStatus.SCHEDULED,
            AssignmentStatus.IN_PROGRESS,
            AssignmentStatus.COMPLETED,
        ],
    ).distinct()


def _booked_between(filters: dict) -> QuerySet[Assignment]:
    """Job ids whose booked (not cancelled) slot overlaps [bookedFrom, bookedTo): the board
    files a job under the day it is booked for, not the day it was wanted."""
    booked = Assignment.objects.exclude(status=AssignmentStatus.CANCELLED)
    if "bookedFrom" in filters:
        # A slot lasts at most a job's longest duration: bounding the start as well keeps
        # the scan to the range asked for, not every booking that ever ended later.
        start_after = filters["bookedFrom"] - timedelta(minutes=MAX_DURATION_MINUTES)
        booked = booked.filter(end__gt=filters["bookedFrom"], start__gt=start_after)
    if "bookedTo" in filters:
        booked = booked.filter(start__lt=filters["bookedTo"])
    return booked.values("job_id")


def _validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _existing_job(pk: int) -> Job:
    return get_object_or_404(Job, pk=pk)


def _job_response(request, pk: int, code: int = status.HTTP_200_OK) -> Response:
    return Response(JobSerializer(jobs_for(request).get(pk=pk)).data, status=code)


class JobListView(GenericAPIView):
    serializer_class = JobSerializer

    def get_permissions(self):
        if self.request.method == "POST":
            return [p() for p in DISPATCHERS_ONLY]
        return [IsAuthenticated(), IsDispatcherOrContractor()]

    @extend_schema(parameters=[JobFilterSerializer], responses=JobSerializer(many=True))
    def get(self, request):
        filters = _validated(JobFilterSerializer, request.query_params)
        queryset = jobs_for(request)
        for param, field in (
            ("status", "status"),
            ("region", "region"),
            ("type", "type"),
            ("date", "desired_date"),
        ):
            if param in filters:
                queryset = queryset.filter(**{field: filters[param]})
        if "bookedFrom" in filters or "bookedTo" in filters:
            queryset = queryset.filter(pk__in=_booked_between(filters))
        page = self.paginate_queryset(queryset.order_by("id"))
        return self.get_paginated_response(JobSerializer(page, many=True).data)

    @extend_schema(request=JobInputSerializer, responses={201: JobSerializer})
    def post(self, request):
        data = _validated(JobInputSerializer, request.data)
        job = services.create_job(
            type=data["type"],
            required_skills=data["requiredSkills"],
            location=location_of(data["location"]),
            desired_date=data["desiredDate"],
            duration_minutes=data["durationMinutes"],
            priority=data["priority"],
        )
        return _job_response(request, job.pk, status.HTTP_201_CREATED)


class JobDetailView(GenericAPIView):
    serializer_class = JobSerializer

    def get_permissions(self):
        if self.request.method == "PATCH":
            return [p() for p in DISPATCHERS_ONLY]
        return [IsAuthenticated(), IsDispatcherOrContractor()]

    def get(self, request, pk: int):
        job = jobs_for(request).filter(pk=pk).first()
        if job is None:  # missing or not the caller's: the same 404, so ids cannot be probed
            raise NotFound("No such job.")
        return Response(JobSerializer(job).data)

    @extend_schema(request=JobPatchSerializer, responses={200: JobSerializer, 409: CONFLICT})
    def patch(self, request, pk: int):
        _existing_job(pk)
        data = _validated(JobPatchSerializer, request.data)
        services.update_job(
            job_id=pk,
            type=data.get("type"),
            required_skills=data.get("requiredSkills"),
            location=location_of(data.get("location")),
            desired_date=data.get("desiredDate"),
            duration_minutes=data.get("durationMinutes"),
            priority=data.get("priority"),
        )
        return _job_response(request, pk)


class AssignView(GenericAPIView):
    permission_classes = DISPATCHERS_ONLY
    serializer_class = AssignmentSerializer

    @extend_schema(
        request=AssignInputSerializer, responses={201: AssignmentSerializer, 409: CONFLICT}
    )
    def post(self, request, pk: int):
        # An unknown job is 404 whatever the body (as on every job endpoint); the service
        # looks the job up under its lock anyway, so the happy path skips a query here.
        serializer = AssignInputSerializer(data=request.data)
        if not serializer.is_valid():
            _existing_job(pk)
            raise ValidationError(serializer.errors)
        data = serializer.validated_data
        assignment = services.assign_job(
            job_id=pk, contractor_id=data["contractorId"], start=data["start"], end=data.get("end")
        )
        return Response(AssignmentSerializer(assignment).data, status=status.HTTP_201_CREATED)


class RescheduleView(GenericAPIView):
    permission_classes = DISPATCHERS_ONLY
    serializer_class = AssignmentSerializer

    @extend_schema(
        request=RescheduleInputSerializer, responses={200: AssignmentSerializer, 409: CONFLICT}
    )
    def post(self, request, pk: int):
        _existing_job(pk)
        data = _validated(RescheduleInputSerializer, request.data)
        assignment = services.reschedule_job(
            job_id=pk,
            start=data["start"],
            end=data.get("end"),
            contractor_id=data.get("contractorId"),
        )
        return Response(AssignmentSerializer(assignment).data)


class CancelView(GenericAPIView):
    permission_classes = DISPATCHERS_ONLY
    serializer_class = JobSerializer

    @extend_schema(request=CancelInputSerializer, responses={200: JobSerializer, 409: CONFLICT})
    def post(self, request, pk: int):
        _existing_job(pk)
        data = _validated(CancelInputSerializer, request.data)
        services.cancel_job(job_id=pk, reason=data["reason"])
        return _job_response(request, pk)


def _acting_contractor_id(request, pk: int) -> int | None:
    """None for dispatchers; a contractor login's own id, after checking it may see the job
    (the service re-checks, under the job's lock, that the job is its own)."""
    _existing_job(pk)
    if is_staff_or_dispatcher(request):
        return None
    if not jobs_for(request).filter(pk=pk).exists():
        raise NotFound("No such job.")  # as for any job a contractor may not see
    return own_contractor_id(request)


class StartView(GenericAPIView):
    """The assigned contractor (own login) or a dispatcher: assigned -> in_progress."""

    permission_classes = [IsAuthenticated, IsDispatcherOrContractor]
    serializer_class = JobSerializer

    @extend_schema(request=None, responses={200: JobSerializer, 409: CONFLICT})
    def post(self, request, pk: int):
        acting = _acting_contractor_id(request, pk)
        services.start_job(job_id=pk, acting_contractor_id=acting)
        return _job_response(request, pk)


class CompleteView(GenericAPIView):
    """The assigned contractor (own login) or a dispatcher: in_progress -> completed."""

    permission_classes = [IsAuthenticated, IsDispatcherOrContractor]
    serializer_class = JobSerializer

    @extend_schema(request=CompleteInputSerializer, responses={200: JobSerializer, 409: CONFLICT})
    def post(self, request, pk: int):
        acting = _acting_contractor_id(request, pk)
        data = _validated(CompleteInputSerializer, request.data)
        services.complete_job(job_id=pk, notes=data["notes"], acting_contractor_id=acting)
        return _job_response(request, pk)


class RatingView(GenericAPIView):
    permission_classes = DISPATCHERS_ONLY
    serializer_class = RatingSerializer

    @extend_schema(
        request=RatingInputSerializer,
        responses={200: RatingSerializer, 201: RatingSerializer, 409: CONFLICT},
    )
    def put(self, request, pk: int):
        _existing_job(pk)
        data = _validated(RatingInputSerializer, request.data)
        rated = services.rate_job(job_id=pk, stars=data["rating"])
        rating = rated.result.rating
        body = {
            "jobId": rating.job_id,
            "contractorId": rating.contractor_id,
            "rating": rating.stars,
        }
        return Response(body, status=201 if rated.result.created else 200)


class AvailabilityView(GenericAPIView):
    serializer_class = AvailabilitySerializer
    permission_classes = [IsAuthenticated, IsDispatcherOrContractor]

    @extend_schema(parameters=[AvailabilityQuerySerializer], responses=AvailabilitySerializer)
    def get(self, request, pk: int):
        contractor = readable_contractor(request, pk)
        query = _validated(AvailabilityQuerySerializer, request.query_params)
        result = availability(
            contractor, query["from"], query["to"], timedelta(minutes=query["duration"])
        )
        return Response(
            AvailabilitySerializer(
                {
                    "contractorId": contractor.pk,
                    "windows": [{"start": s, "end": e} for s, e in result.windows],
                    "slots": [{"start": s, "end": e} for s, e in result.slots],
                }
            ).data
        )


class RecommendationsView(GenericAPIView):
    permission_classes = DISPATCHERS_ONLY
    serializer_class = RecommendationListSerializer

    @extend_schema(
        parameters=[RecommendationQuerySerializer],
        responses=RecommendationListSerializer,
        description="Ranked contractors; makes the job's list active (re-ranked live) for "
        "30 minutes, until the job is assigned or cancelled.",
    )
    def get(self, request, pk: int):
        _existing_job(pk)
        query = _validated(RecommendationQuerySerializer, request.query_params)
        recommendations = services.recommend_for_job(job_id=pk, limit=query["limit"])
        body = {
            "jobId": pk,
            "recommendations": [
                {
                    "rank": rank,
                    "contractorId": rec.contractor.pk,
                    "contractorName": rec.contractor.name,
                    "score": rec.score.total,
                    "scoreBreakdown": rec.score.breakdown(),
                    "distanceMiles": round(rec.miles, 1),
                    "slots": [{"start": s, "end": e} for s, e in rec.slots],
                    "explanation": rec.explanation(),
                }
                for rank, rec in enumerate(recommendations, start=1)
            ],
        }
        return Response(RecommendationListSerializer(body).data)
