from django.urls import path

from scheduling.api import views

urlpatterns = [
    path("jobs", views.JobListView.as_view(), name="job-list"),
    path("jobs/<id:pk>", views.JobDetailView.as_view(), name="job-detail"),
    path("jobs/<id:pk>/assign", views.AssignView.as_view(), name="job-assign"),
    path("jobs/<id:pk>/reschedule", views.RescheduleView.as_view(), name="job-reschedule"),
    path("jobs/<id:pk>/cancel", views.CancelView.as_view(), name="job-cancel"),
    path("jobs/<id:pk>/start", views.StartView.as_view(), name="job-start"),
    path("jobs/<id:pk>/complete", views.CompleteView.as_view(), name="job-complete"),
    path("jobs/<id:pk>/rating", views.RatingView.as_view(), name="job-rating"),
    path(
        "jobs/<id:pk>/recommendations",
        views.RecommendationsView.as_view(),
        name="job-recommendations",
    ),
    path(
        "contractors/<id:pk>/availability",
        views.AvailabilityView.as_view(),
        name="contractor-availability",
    ),
]
