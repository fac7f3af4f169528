from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from smartscheduler import board
from smartscheduler.api.asyncapi import asyncapi_view
from smartscheduler.api.views import LogoutView, ObtainTokenView
from smartscheduler.operations import healthz, metrics

api = [
    path("auth/token", ObtainTokenView.as_view(), name="api-token"),
    path("auth/logout", LogoutView.as_view(), name="api-logout"),
    path("schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("asyncapi", asyncapi_view, name="api-asyncapi"),
    # The split view serves Swagger UI's set-up script as a file (no inline script: the CSP).
    path("docs", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
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
    path("metrics", metrics, name="metrics"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="/login/"), name="logout"),
    path("me/", board.me, name="me"),
    path("", board.board, name="board"),
]
