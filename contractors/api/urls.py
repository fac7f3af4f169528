from django.urls import path

from contractors.api import views

urlpatterns = [
    path("contractors", views.ContractorListView.as_view(), name="contractor-list"),
    path("contractors/<id:pk>", views.ContractorDetailView.as_view(), name="contractor-detail"),
    path(
        "contractors/<id:pk>/working-hours",
        views.WorkingHoursView.as_view(),
        name="contractor-working-hours",
    ),
    path("contractors/<id:pk>/time-off", views.TimeOffListView.as_view(), name="time-off-list"),
    path(
        "contractors/<id:pk>/time-off/<id:time_off_id>",
        views.TimeOffDetailView.as_view(),
        name="time-off-detail",
    ),
    path("regions", views.RegionListView.as_view(), name="region-list"),
]
