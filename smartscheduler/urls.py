from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from events.api.metrics import metrics_view
from smartscheduler import board
from smartscheduler.api.asyncapi import asyncapi_view
from smartscheduler.api.views import ObtainTokenView
from smartscheduler.health import healthz

api = [
    path("auth/token", ObtainTokenView.as_view(), name="api-token"),
    path("schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("asyncapi", asyncapi_view, name="api-asyncapi"),
    path("docs", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("contractors.api.urls")),
    path("", include("scheduling.api.urls")),
    path("", include("events.api.urls")),
    path("", include("events.webhooks.urls")),
]

handler404 = "smartscheduler.api.errors.page_not_found"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include(api)),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="/login/"), name="logout"),
    path("me/", board.me, name="me"),
    path("", board.board, name="board"),
]
