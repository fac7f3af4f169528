"""Webhooks in the admin: endpoints are added, changed and deleted through the services (the
new secret is shown once, in the success message); attempts are read-only, with a
"Send again" action (the redeliver service)."""

from django import forms
from django.contrib import admin, messages

from events.admin_support import ReadOnlyAdmin, ServiceAdmin, error_text
from events.errors import DomainError
from events.webhooks import services
from events.webhooks.models import WebhookDelivery, WebhookEndpoint


class EndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https")

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "event_types", "active", "description"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ServiceAdmin):
    form = EndpointForm
    list_display = ["id", "url", "event_types", "active", "disabled_reason", "updated_at"]
    list_filter = ["active"]
    fields = ["url", "event_types", "active", "description", "disabled_reason"]
    readonly_fields = ["disabled_reason"]
    actions = ["rotate_secrets"]

    def save_through_service(self, request, form, formsets, change):
        data = form.cleaned_data
        values = {
            "url": data["url"],
            "event_types": data["event_types"] or [],
            "active": data["active"],
            "description": data["description"],
        }
        if change:
            return services.update_endpoint(endpoint_id=form.instance.pk, **values)
        result = services.create_endpoint(**values)
        self.message_user(request, f"Secret (shown once): {result.secret}", messages.WARNING)
        return result.endpoint

    def delete_through_service(self, request, obj):
        services.delete_endpoint(endpoint_id=obj.pk)

    @admin.action(description="Rotate the secret (the old one signs for the grace period)")
    def rotate_secrets(self, request, queryset):
        for endpoint in queryset:
            result = services.rotate_secret(endpoint_id=endpoint.pk)
            self.message_user(
                request,
                f"#{endpoint.pk} new secret (shown once): {result.secret}",
                messages.WARNING,
            )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "id", "endpoint", "event", "attempted_at", "status_code", "duration_ms", "ok", "manual",
        "error",
    ]  # fmt: skip
    list_filter = ["ok", "manual", "endpoint"]
    list_select_related = ["endpoint", "event"]
    actions = ["send_again"]

    @admin.action(description="Send again (redeliver)")
    def send_again(self, request, queryset):
        for delivery in queryset:
            try:
                new = services.redeliver(endpoint_id=delivery.endpoint_id, delivery_id=delivery.pk)
            except DomainError as exc:
                self.message_user(request, error_text(exc), messages.ERROR)
                continue
            level = messages.SUCCESS if new.ok else messages.ERROR
            self.message_user(
                request, f"#{delivery.event_id} to {delivery.endpoint}: {new.error or 'ok'}", level
            )
