"""Dispatchers' admin for contractors; every save goes through contractors.services.

Times are shown where they are lived: working hours are the contractor's local times (weekday
names, not 0..6), and on a contractor's page time off is read and typed in its timezone too.
"""

import calendar

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.utils import timezone
from knox.models import AuthToken

from contractors import services, timezones
from contractors.models import Contractor, Rating, Region, TimeOff, WorkingHours
from contractors.services import Location, Window
from contractors.tokens import revoke_token, revoke_tokens
from events.admin_support import ReadOnlyAdmin, ServiceAdmin, ServiceModelForm
from events.errors import Invalid

WEEKDAYS = [(number, calendar.day_name[number]) for number in range(7)]


class ContractorForm(ServiceModelForm):
    skills = forms.CharField(required=False, help_text="Comma-separated, e.g. tile, grout.")

    class Meta:
        model = Contractor
        fields = ["name", "type", "skills", "lat", "lng", "address", "timezone", "status", "user"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.__init_timezone()
        if self.instance.pk:
            self.initial["skills"] = ", ".join(self.instance.skills)
        else:
            self.initial["timezone"] = ""
        # Only accounts that could be this contractor's own login: active, not staff (no
        # dispatcher, no admin), linked to no other contractor; and the current one.
        if "user" in self.fields:
            self.fields["user"].queryset = linkable_users(self.instance.user_id)

    def clean_skills(self) -> list[str]:
        return [s.strip() for s in self.cleaned_data["skills"].split(",") if s.strip()]

    def __init_timezone(self) -> None:
        field = self.fields["timezone"]
        field.required = False
        field.help_text = (
            "IANA name such as America/New_York. Leave empty to take the zone of the base "
            "location. Working hours below are in this zone."
        )

    def clean_timezone(self) -> str | None:
        name = (self.cleaned_data.get("timezone") or "").strip()
        if not name:
            return None  # the service takes the zone of the base location (or keeps the old one)
        problem = timezones.problem_with(name)
        if problem:
            raise forms.ValidationError(problem)
        return name


def linkable_users(current_user_id: int | None):
    users = get_user_model()._default_manager.filter(
        is_active=True, is_staff=False, is_superuser=False, contractor__isnull=True
    )
    if current_user_id is not None:
        users = users | get_user_model()._default_manager.filter(pk=current_user_id)
    return users.order_by(get_user_model().USERNAME_FIELD)


class WorkingHoursFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        try:
            services.validate_windows(windows_of(self))
        except Invalid as exc:
            raise forms.ValidationError(exc.errors["workingHours"]) from exc


def windows_of(formset) -> list[Window]:
    return [
        Window(f.cleaned_data["weekday"], f.cleaned_data["start"], f.cleaned_data["end"])
        for f in formset.forms
        if f.cleaned_data and not f.cleaned_data.get("DELETE")
    ]


class WorkingHoursForm(ServiceModelForm):
    weekday = forms.TypedChoiceField(choices=WEEKDAYS, coerce=int)

    class Meta:
        model = WorkingHours
        fields = ["weekday", "start", "end"]


class WorkingHoursInline(admin.TabularInline):
    model = WorkingHours
    form = WorkingHoursForm
    formset = WorkingHoursFormSet
    extra = 0
    verbose_name_plural = "working hours (the contractor's local time)"


class TimeOffForm(ServiceModelForm):
    class Meta:
        model = TimeOff
        fields = ["start", "end", "reason"]


class TimeOffInline(admin.TabularInline):
    model = TimeOff
    form = TimeOffForm
    fields = ["start", "end", "reason"]
    extra = 0
    verbose_name_plural = "time off (the contractor's local time)"


@admin.register(Contractor)
class ContractorAdmin(ServiceAdmin):
    form = ContractorForm
    inlines = [WorkingHoursInline, TimeOffInline]
    list_display = ["name", "type", "region", "status", "average_rating", "rating_count"]
    list_filter = ["status", "type", "region"]
    search_fields = ["name", "address"]
    readonly_fields = ["region", "average_rating", "rating_count", "deleted_at"]
    service_error_fields = {"location": "lat"}

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # On a contractor's page, date-times (time off) are shown and typed in its timezone.
        contractor = (
            Contractor.objects.filter(pk=object_id).first()
            if object_id is not None and str(object_id).isdigit()
            else None
        )
        if contractor is None:
            return super().changeform_view(request, object_id, form_url, extra_context)
        with timezone.override(contractor.tz):
            response = super().changeform_view(request, object_id, form_url, extra_context)
            # Rendered here: a TemplateResponse would otherwise render after the override.
            if hasattr(response, "render"):
                response.render()
            return response

    def get_queryset(self, request):
        return super().get_queryset(request).filter(deleted_at__isnull=True)

    def save_through_service(self, request, form, formsets, change):
        data = form.cleaned_data
        location = Location(data["lat"], data["lng"], data.get("address", ""))
        hours = next(fs for fs in formsets if fs.model is WorkingHours)
        time_off = next(fs for fs in formsets if fs.model is TimeOff)
        profile = {
            "name": data["name"],
            "type": data["type"],
            "skills": data["skills"],
            "location": location,
            "timezone_name": data["timezone"],
            "status": data["status"],
        }
        if change:
            contractor = services.update_contractor(contractor_id=form.instance.pk, **profile)
            services.set_working_hours(contractor_id=contractor.pk, windows=windows_of(hours))
            if data.get("user") and data["user"] != contractor.user:
                services.link_user(contractor_id=contractor.pk, user=data["user"])
        else:
            contractor = services.create_contractor(
                **profile, working_hours=windows_of(hours), user=data.get("user")
            )
        self._save_time_off(contractor, time_off)
        return contractor

    def _save_time_off(self, contractor: Contractor, formset) -> None:
        for entry_form in formset.forms:
            cleaned = entry_form.cleaned_data
            if not cleaned:
                continue
            existing = cleaned.get("id")
            if existing is not None and (cleaned.get("DELETE") or entry_form.has_changed()):
                services.remove_time_off(contractor_id=contractor.pk, time_off_id=existing.pk)
            if not cleaned.get("DELETE") and (existing is None or entry_form.has_changed()):
                services.add_time_off(
                    contractor_id=contractor.pk,
                    start=cleaned["start"],
                    end=cleaned["end"],
                    reason=cleaned.get("reason", ""),
                )

    def get_deleted_objects(self, objs, request):
        # A soft delete: nothing cascades and nothing protected is touched.
        return [str(obj) for obj in objs], {"contractors": len(objs)}, set(), []

    def delete_through_service(self, request, obj):
        services.delete_contractor(contractor_id=obj.pk)


@admin.register(Region)
class RegionAdmin(ServiceAdmin):
    list_display = ["slug", "name", "center_lat", "center_lng", "radius_miles"]
    filter_horizontal = ["watchers"]

    def get_readonly_fields(self, request, obj=None):
        # Moving or resizing a region would re-derive the region of every job and contractor;
        # that is not supported yet, so an existing region only changes its name and watchers.
        return ["slug", "center_lat", "center_lng", "radius_miles"] if obj else []

    def save_through_service(self, request, form, formsets, change):
        data = form.cleaned_data
        if change:
            return services.update_region(
                slug=form.instance.slug, name=data["name"], watchers=list(data["watchers"])
            )
        region = services.create_region(
            slug=data["slug"],
            name=data["name"],
            center_lat=data["center_lat"],
            center_lng=data["center_lng"],
            radius_miles=data["radius_miles"],
        )
        return services.update_region(
            slug=region.slug, name=region.name, watchers=list(data["watchers"])
        )

    def has_delete_permission(self, request, obj=None):
        return False  # jobs and contractors keep its slug; regions are retired, not deleted


@admin.register(Rating)
class RatingAdmin(ReadOnlyAdmin):
    list_display = ["job_id", "contractor", "stars", "updated_at"]
    list_filter = ["stars"]


# --- credentials ------------------------------------------------------------------------------


@admin.action(description="Revoke selected API tokens")
def revoke_selected_tokens(modeladmin, request, queryset):
    revoked = sum(revoke_token(token_id=token.pk) for token in queryset)
    modeladmin.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)


class ApiTokenAdmin(admin.ModelAdmin):
    """API tokens: who holds one, since and until when; revoke them. The token itself is never
    stored, so it cannot be shown (the first 15 characters identify it)."""

    list_display = ["token_key", "user", "created", "expiry"]
    list_filter = ["expiry"]
    search_fields = ["user__username", "=token_key"]
    fields = ["token_key", "user", "created", "expiry"]
    readonly_fields = fields
    actions = [revoke_selected_tokens]

    def has_add_permission(self, request):
        return False  # issued by `POST /api/auth/token` or `manage.py create_user`

    def has_change_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def delete_model(self, request, obj):
        revoke_token(token_id=obj.pk)


if admin.site.is_registered(AuthToken):
    admin.site.unregister(AuthToken)
admin.site.register(AuthToken, ApiTokenAdmin)


@admin.action(description="Revoke all API tokens of the selected users")
def revoke_users_tokens(modeladmin, request, queryset):
    revoked = sum(revoke_tokens(user=user) for user in queryset)
    modeladmin.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)


class UserWithTokensAdmin(UserAdmin):
    actions = [*UserAdmin.actions, revoke_users_tokens]


_user_model = get_user_model()
if admin.site.is_registered(_user_model):
    admin.site.unregister(_user_model)
admin.site.register(_user_model, UserWithTokensAdmin)
