"""`/api/webhooks`: admins register endpoints, see attempts and send one again."""

from django.conf import settings
from django.utils.module_loading import import_string
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from events.catalog import EVENT_TYPE_CHOICES
from events.webhooks import services
from events.webhooks.models import WebhookDelivery, WebhookEndpoint


class EndpointSerializer(serializers.ModelSerializer):
    eventTypes = serializers.ListField(
        source="event_types",
        child=serializers.ChoiceField(choices=EVENT_TYPE_CHOICES),
        required=False,
        default=list,
        help_text="Empty: every type.",
    )
    disabledReason = serializers.CharField(source="disabled_reason", read_only=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id", "url", "eventTypes", "active", "description", "disabledReason", "createdAt",
            "updatedAt",
        ]  # fmt: skip
        read_only_fields = ["id"]


class EndpointWithSecretSerializer(EndpointSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown once: store it now.")

    class Meta(EndpointSerializer.Meta):
        fields = [*EndpointSerializer.Meta.fields, "secret"]


def with_secret(result: services.EndpointWithSecret) -> dict:
    return {**EndpointSerializer(result.endpoint).data, "secret": result.secret}


class DeliverySerializer(serializers.ModelSerializer):
    eventId = serializers.UUIDField(source="event.event_id", read_only=True)
    sequence = serializers.IntegerField(source="event_id", read_only=True)
    eventType = serializers.CharField(source="event.type", read_only=True)
    attemptedAt = serializers.DateTimeField(source="attempted_at")
    statusCode = serializers.IntegerField(source="status_code", allow_null=True)
    durationMs = serializers.IntegerField(source="duration_ms")

    class Meta:
        model = WebhookDelivery
        fields = [
            "id", "eventId", "sequence", "eventType", "attemptedAt", "statusCode", "durationMs",
            "error", "ok", "manual",
        ]  # fmt: skip


class IsAdmin(BasePermission):
    """The admin role as the accounts define it (settings.WEBHOOKS_ADMIN_POLICY): a staff
    user who is also a dispatcher is a dispatcher here."""

    message = "Only administrators may manage webhooks."

    def has_permission(self, request, view) -> bool:
        return import_string(settings.WEBHOOKS_ADMIN_POLICY)(request.user)


class AdminOnly:
    permission_classes = [IsAuthenticated, IsAdmin]


class EndpointList(AdminOnly, generics.ListAPIView):
    serializer_class = EndpointSerializer
    queryset = WebhookEndpoint.objects.order_by("id")

    @extend_schema(request=EndpointSerializer, responses={201: EndpointWithSecretSerializer})
    def post(self, request):
        data = EndpointSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.create_endpoint(
            url=data.validated_data["url"],
            event_types=data.validated_data["event_types"],
            active=data.validated_data.get("active", True),
            description=data.validated_data.get("description", ""),
        )
        return Response(with_secret(result), status=status.HTTP_201_CREATED)


class EndpointDetail(AdminOnly, APIView):
    serializer_class = EndpointSerializer

    @extend_schema(responses=EndpointSerializer)
    def get(self, request, pk: int):
        return Response(EndpointSerializer(services._get(pk)).data)

    @extend_schema(request=EndpointSerializer, responses=EndpointSerializer)
    def patch(self, request, pk: int):
        data = EndpointSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        endpoint = services.update_endpoint(
            endpoint_id=pk,
            url=fields.get("url"),
            event_types=fields.get("event_types") if "eventTypes" in request.data else None,
            active=fields.get("active"),
            description=fields.get("description"),
        )
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int):
        services.delete_endpoint(endpoint_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RotateSecret(AdminOnly, APIView):
    @extend_schema(request=None, responses=EndpointWithSecretSerializer)
    def post(self, request, pk: int):
        return Response(with_secret(services.rotate_secret(endpoint_id=pk)))


class DeliveryList(AdminOnly, generics.ListAPIView):
    serializer_class = DeliverySerializer

    def get_queryset(self):
        endpoint = services._get(self.kwargs["pk"])
        return endpoint.deliveries.select_related("event").order_by("-attempted_at", "-id")


class Redeliver(AdminOnly, APIView):
    @extend_schema(request=None, responses={201: DeliverySerializer})
    def post(self, request, pk: int, delivery_id: int):
        delivery = services.redeliver(endpoint_id=pk, delivery_id=delivery_id)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_201_CREATED)
