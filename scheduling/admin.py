"""Dispatchers' admin for jobs and assignments; every write goes through scheduling.services.

A job's page is a dispatcher's tool: its ranked recommendations with a button to book each
slot (a booked job that has not started: a button to move it to each slot), and buttons to
start, complete (with notes), cancel (with a reason) and rate the job, as its state allows.
The list has start, complete and cancel (asking for a reason) as actions. A refusal reads as
the service words it; nothing here writes a row itself.
"""

from datetime import datetime
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.dateparse import parse_datetime

from contractors.services import Location
from events.admin_support import ServiceAdmin, ServiceModelForm, error_text
from events.errors import DomainError
from scheduling import services
from scheduling.models import Assignment, AssignmentStatus, Job, JobStatus
from scheduling.services.lifecycle import MAX_NOTES_LENGTH


def local(moment: datetime | None, zone: ZoneInfo) -> str:
    """A moment as the contractor lives it: `Mon 7 Dec 10:00 EST`."""
    if moment is None:
        return "-"
    shown = moment.astimezone(zone)
    return f"{shown:%a} {shown.day} {shown:%b %H:%M %Z}"


def slot_label(assignment: Assignment) -> str:
    """A booking's slot in its contractor's time: `Mon 7 Dec 10:00 EST - 11:30`."""
    zone = assignment.contractor.tz
    return f"{local(assignment.start, zone)} - {assignment.end.astimezone(zone):%H:%M}"


class JobForm(ServiceModelForm):
    required_skills = forms.CharField(required=False, help_text="Comma-separated.")

    class Meta:
        model = Job
        fields = [
            "type", "required_skills", "lat", "lng", "address", "desired_date",
            "duration_minutes", "priority",
        ]  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["required_skills"] = ", ".join(self.instance.required_skills)

    def clean_required_skills(self) -> list[str]:
        return [s.strip() for s in self.cleaned_data["required_skills"].split(",") if s.strip()]


def _each(modeladmin, request, queryset, verb: str, call) -> None:
    done = 0
    for job in queryset.order_by("pk"):
        try:
            call(job)
            done += 1
        except DomainError as exc:
            modeladmin.message_user(request, f"Job {job.pk}: {error_text(exc)}", messages.ERROR)
    if done:
        modeladmin.message_user(request, f"{verb} {done} job(s).", messages.SUCCESS)


@admin.action(description="Start selected jobs")
def start_jobs(modeladmin, request, queryset):
    _each(modeladmin, request, queryset, "Started", lambda job: services.start_job(job_id=job.pk))


@admin.action(description="Complete selected jobs")
def complete_jobs(modeladmin, request, queryset):
    _each(
        modeladmin, request, queryset, "Completed", lambda job: services.complete_job(job_id=job.pk)
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )


@admin.action(description="Cancel selected jobs (asks for a reason)")
def cancel_jobs(modeladmin, request, queryset):
    if "apply" in request.POST:
        form = ReasonForm(request.POST)
        if form.is_valid():
            reason = form.cleaned_data["reason"]
            _each(
                modeladmin,
                request,
                queryset,
                "Cancelled",
                lambda job: services.cancel_job(job_id=job.pk, reason=reason),
            )
            return None
    else:
        form = ReasonForm()
    return TemplateResponse(
        request,
        "admin/scheduling/job/cancel_reason.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": "Cancel jobs",
            "jobs": queryset.order_by("pk"),
            "form": form,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "opts": modeladmin.model._meta,
        },
    )


class AssignmentInline(admin.TabularInline):
    model = Assignment
    fields = ["contractor", "local_slot", "status", "score", "started", "completed", "notes"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="slot (contractor's time)")
    def local_slot(self, obj: Assignment) -> str:
        return slot_label(obj)

    @admin.display(description="started (contractor's time)")
    def started(self, obj: Assignment) -> str:
        return local(obj.started_at, obj.contractor.tz)

    @admin.display(description="completed (contractor's time)")
    def completed(self, obj: Assignment) -> str:
        return local(obj.completed_at, obj.contractor.tz)


class CompleteForm(forms.Form):
    notes = forms.CharField(
        max_length=MAX_NOTES_LENGTH, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )


class RateForm(forms.Form):
    rating = forms.TypedChoiceField(choices=[(n, "★" * n) for n in range(1, 6)], coerce=int)


def _cleaned(form_class: type[forms.Form], data, refusal: str) -> dict:
    """A job page button's form, cleaned, else `refusal` (shown as the page's message)."""
    form = form_class(data)
    if not form.is_valid():
        raise DomainError(refusal)
    return form.cleaned_data


@admin.register(Job)
class JobAdmin(ServiceAdmin):
    form = JobForm
    inlines = [AssignmentInline]
    actions = [start_jobs, complete_jobs, cancel_jobs]
    list_display = ["id", "type", "region", "desired_date", "priority", "status"]
    list_filter = ["status", "type", "region", "priority"]
    date_hierarchy = "desired_date"
    readonly_fields = ["region", "status", "cancel_reason"]
    change_form_template = "admin/scheduling/job/change_form.html"

    class Media:
        css = {"all": ["scheduling/admin.css"]}

    service_error_fields = {"location": "lat"}

    def has_change_permission(self, request, obj=None):
        # Only open jobs can be edited (the service says so too); others are read-only pages.
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or obj.status == JobStatus.OPEN)

    def has_delete_permission(self, request, obj=None):
        return False  # jobs are cancelled, never deleted

    def get_inline_instances(self, request, obj=None):
        return super().get_inline_instances(request, obj) if obj is not None else []

    # A new job has no region, status or bookings yet: its page shows only what is typed.
    # A job that is no longer open is a read-only page: its skills read as a list, not JSON.
    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        readonly = list(super().get_readonly_fields(request, obj))
        if not self.has_change_permission(request, obj):
            readonly.append("skills")
        return readonly

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if "skills" not in fields:
            return fields
        return ["skills" if f == "required_skills" else f for f in fields if f != "skills"]

    @admin.display(description="required skills")
    def skills(self, obj: Job) -> str:
        return ", ".join(obj.required_skills) or "-"

    def save_through_service(self, request, form, formsets, change):
        data = form.cleaned_data
        fields = {
            "type": data["type"],
            "required_skills": data["required_skills"],
            "location": Location(data["lat"], data["lng"], data.get("address", "")),
            "desired_date": data["desired_date"],
            "duration_minutes": data["duration_minutes"],
            "priority": data["priority"],
        }
        if change:
            return services.update_job(job_id=form.instance.pk, **fields)
        return services.create_job(**fields)

    # --- the job page as a dispatcher's tool ----------------------------------------------

    def get_urls(self):
        return [
            path(
                "<path:object_id>/do/<str:action>/",
                self.admin_site.admin_view(self.job_action),
                name="scheduling_job_action",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = Job.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        if job is not None and request.method == "GET":
            extra_context = {**(extra_context or {}), **self._tools(request, job)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _tools(self, request, job: Job) -> dict:
        context: dict = {"job_status": job.status}
        booking = job.assignments.filter(status=AssignmentStatus.SCHEDULED).first()
        if booking is not None:
            context["booking_url"] = reverse(
                "admin:scheduling_assignment_change", args=[booking.pk]
            )
        if job.status == JobStatus.OPEN or booking is not None:
            try:
                ranked = services.recommend_for_job(job_id=job.pk, limit=5)
            except DomainError as exc:
                ranked = []
                self.message_user(request, error_text(exc), messages.ERROR)
            context["recommendations"] = [
                {
                    "rank": rank,
                    "contractor": rec.contractor,
                    "score": rec.score.total,
                    "miles": round(rec.miles, 1),
                    "explanation": rec.explanation(),
                    "slots": [
                        {
                            "start": start.isoformat(),
                            "label": f"{local(start, rec.contractor.tz)} - "
                            f"{end.astimezone(rec.contractor.tz):%H:%M}",
                        }
                        for start, end in rec.slots
                    ],
                }
                for rank, rec in enumerate(ranked, start=1)
            ]
        if job.status in (JobStatus.OPEN, JobStatus.ASSIGNED):
            context["cancel_form"] = ReasonForm()
        if job.status == JobStatus.IN_PROGRESS:
            context["complete_form"] = CompleteForm()
        if job.status == JobStatus.COMPLETED:
            rating = job_rating(job)
            context["rate_form"] = RateForm(initial={"rating": rating} if rating else None)
            context["current_rating"] = rating
        context["book_url"] = reverse(
            "admin:scheduling_job_action",
            args=[job.pk, "book" if job.status == JobStatus.OPEN else "reschedule"],
        )
        context["start_url"] = reverse("admin:scheduling_job_action", args=[job.pk, "start"])
        context["complete_url"] = reverse("admin:scheduling_job_action", args=[job.pk, "complete"])
        context["cancel_url"] = reverse("admin:scheduling_job_action", args=[job.pk, "cancel"])
        context["rate_url"] = reverse("admin:scheduling_job_action", args=[job.pk, "rate"])
        return context

    def job_action(self, request, object_id, action):
        """POST only: one service call; its refusal comes back as a message on the job page."""
        job = get_object_or_404(Job, pk=object_id if str(object_id).isdigit() else 0)
        if request.method != "POST":
            return HttpResponseRedirect(self._page(job))
        # The model-level change permission (an open job's page is editable with it).
        if not super().has_change_permission(request):
            raise PermissionDenied
        try:
            done = self._run(action, job, request.POST)
        except DomainError as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
        else:
            if done:
                self.message_user(request, done, messages.SUCCESS)
        return HttpResponseRedirect(self._page(job))

    @staticmethod
    def _offered_slot(data, refusal: str) -> tuple[datetime, int]:
        """The start and contractor of the slot the button offered, else `refusal`."""
        start = parse_datetime(data.get("start", ""))
        contractor_id = data.get("contractor", "")
        if start is None or start.tzinfo is None or not contractor_id.isdigit():
            raise DomainError(refusal)
        return start, int(contractor_id)

    def _run(self, action: str, job: Job, data) -> str | None:
        if action == "book":
            start, contractor = self._offered_slot(data, "Pick one of the offered slots to book.")
            assignment = services.assign_job(job_id=job.pk, contractor_id=contractor, start=start)
            return f"Booked with {assignment.contractor.name}."
        if action == "reschedule":
            start, contractor = self._offered_slot(
                data, "Pick one of the offered slots to move the job to."
            )
            assignment = services.reschedule_job(
                job_id=job.pk, start=start, contractor_id=contractor
            )
            return f"Moved to {assignment.contractor.name}, {slot_label(assignment)}."
        if action == "start":
            services.start_job(job_id=job.pk)
            return "Started."
        if action == "complete":
            notes = _cleaned(CompleteForm, data, f"Notes: at most {MAX_NOTES_LENGTH} characters.")
            services.complete_job(job_id=job.pk, notes=notes["notes"])
            return "Completed."
        if action == "cancel":
            reason = _cleaned(ReasonForm, data, "Reason: at most 500 characters.")
            services.cancel_job(job_id=job.pk, reason=reason["reason"])
            return "Cancelled."
        if action == "rate":
            stars = _cleaned(RateForm, data, "Rating: pick 1 to 5 stars.")
            rated = services.rate_job(job_id=job.pk, stars=stars["rating"])
            return "Rated." if rated.result.changed else "That is already the rating."
        raise DomainError(f"Unknown action '{action}'.")

    def _page(self, job: Job) -> str:
        return reverse("admin:scheduling_job_change", args=[job.pk])


def job_rating(job: Job) -> int | None:
    from contractors.models import Rating

    return Rating.objects.filter(job_id=job.pk).values_list("stars", flat=True).first()


class AssignmentForm(ServiceModelForm):
    class Meta:
        model = Assignment
        fields = ["job", "contractor", "start", "end"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["end"].required = False
        self.fields["end"].help_text = "Leave empty: the start plus the job's duration."
        self.fields["start"].help_text = "UTC (the contractor's local times are on the job page)."
        if self.instance.pk:
            self.fields["job"].disabled = True
        else:
            self.fields["job"].queryset = Job.objects.filter(status=JobStatus.OPEN)


@admin.register(Assignment)
class AssignmentAdmin(ServiceAdmin):
    """Add = assign the job; change = reschedule it (new time and/or contractor)."""

    form = AssignmentForm
    list_display = ["id", "job", "contractor", "local_slot", "start", "end", "status", "score"]
    list_select_related = ["contractor", "job"]
    list_filter = ["status"]
    readonly_fields = ["status", "score", "score_breakdown", "started_at", "completed_at", "notes"]
    service_error_fields = {"contractorId": "contractor"}

    @admin.display(description="slot (contractor's time)")
    def local_slot(self, obj: Assignment) -> str:
        return slot_label(obj)

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or obj.status == AssignmentStatus.SCHEDULED)

    def has_delete_permission(self, request, obj=None):
        return False  # cancel the job instead

    def response_change(self, request, obj):
        response = super().response_change(request, obj)
        if "_save" not in request.POST:  # "Save and continue editing" stays
            return response
        # Rescheduled from the job's page: back to it, where the move shows.
        return HttpResponseRedirect(reverse("admin:scheduling_job_change", args=[obj.job_id]))

    def save_through_service(self, request, form, formsets, change):
        data = form.cleaned_data
        if change:
            return services.reschedule_job(
                job_id=form.instance.job_id,
                start=data["start"],
                end=data.get("end"),
                contractor_id=data["contractor"].pk,
            )
        return services.assign_job(
            job_id=data["job"].pk,
            contractor_id=data["contractor"].pk,
            start=data["start"],
            end=data.get("end"),
        )
