"""Dispatchers' admin for jobs and assignments; every save goes through scheduling.services."""

from django import forms
from django.contrib import admin, messages

from contractors.services import Location
from events.admin_support import ServiceAdmin, error_text
from events.errors import DomainError
from scheduling import services
from scheduling.models import Assignment, Job, JobStatus


class JobForm(forms.ModelForm):
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


@admin.action(description="Cancel selected jobs")
def cancel_jobs(modeladmin, request, queryset):
    cancelled = 0
    for job in queryset:
        try:
            services.cancel_job(job_id=job.pk, reason="Cancelled in the admin")
            cancelled += 1
        except DomainError as exc:
            modeladmin.message_user(request, f"Job {job.pk}: {error_text(exc)}", messages.ERROR)
    if cancelled:
        modeladmin.message_user(request, f"Cancelled {cancelled} job(s).", messages.SUCCESS)


class AssignmentInline(admin.TabularInline):
    model = Assignment
    fields = ["contractor", "start", "end", "status", "score"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Job)
class JobAdmin(ServiceAdmin):
    form = JobForm
    inlines = [AssignmentInline]
    actions = [cancel_jobs]
    list_display = ["id", "type", "region", "desired_date", "priority", "status"]
    list_filter = ["status", "type", "region", "priority"]
    date_hierarchy = "desired_date"
    readonly_fields = ["region", "status", "cancel_reason"]

    def has_change_permission(self, request, obj=None):
        # Only open jobs can be edited (the service says so too); others are read-only pages.
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or obj.status == JobStatus.OPEN)

    def has_delete_permission(self, request, obj=None):
        return False  # jobs are cancelled, never deleted

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


class AssignmentForm(forms.ModelForm):
    class Meta:
        model = Assignment
        fields = ["job", "contractor", "start", "end"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["job"].disabled = True
        else:
            self.fields["job"].queryset = Job.objects.filter(status=JobStatus.OPEN)


@admin.register(Assignment)
class AssignmentAdmin(ServiceAdmin):
    """Add = assign the job; change = reschedule it (new time and/or contractor)."""

    form = AssignmentForm
    list_display = ["id", "job", "contractor", "start", "end", "status", "score"]
    list_filter = ["status"]
    readonly_fields = ["status", "score", "score_breakdown"]

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or obj.status == "scheduled")

    def has_delete_permission(self, request, obj=None):
        return False  # cancel the job instead

    def save_through_service(self, request, form, formsets, change):
        data = form.cleaned_data
        if change:
            return services.reschedule_job(
                job_id=form.instance.job_id,
                start=data["start"],
                end=data["end"],
                contractor_id=data["contractor"].pk,
            )
        return services.assign_job(
            job_id=data["job"].pk,
            contractor_id=data["contractor"].pk,
            start=data["start"],
            end=data["end"],
        )
