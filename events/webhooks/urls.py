from django.urls import path

from events.webhooks import api

urlpatterns = [
    path("webhooks", api.EndpointList.as_view(), name="webhooks"),
    path("webhooks/<id:pk>", api.EndpointDetail.as_view(), name="webhook"),
    path("webhooks/<id:pk>/rotate-secret", api.RotateSecret.as_view(), name="webhook-rotate"),
    path("webhooks/<id:pk>/deliveries", api.DeliveryList.as_view(), name="webhook-deliveries"),
    path(
        "webhooks/<id:pk>/deliveries/<id:delivery_id>/redeliver",
        api.Redeliver.as_view(),
        name="webhook-redeliver",
    ),
]
