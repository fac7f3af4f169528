"""Admin pages that write through services.

`ServiceAdmin` routes saves and deletes to services (subclasses implement `save_through_service`
and `delete_through_service`) and turns a domain error raised while saving into an error message
on the same page; the admin's own transaction has rolled back by then, so nothing is written.
"""

from django.contrib import admin, messages
from django.contrib.admin.utils import construct_change_message
from django.http import HttpResponseRedirect

from events.errors import DomainError, Invalid


def error_text(exc: DomainError) -> str:
    if isinstance(exc, Invalid):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.errors.items())
    return exc.message


class ServiceAdmin(admin.ModelAdmin):
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as exc:
            self.message_user(request, error_text(exc), level=messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except DomainError as exc:
            self.message_user(request, error_text(exc), level=messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def save_model(self, request, obj, form, change):
        """Saved in `save_related`, where inline formsets are available too."""

    def save_related(self, request, form, formsets, change):
        saved = self.save_through_service(request, form, formsets, change)
        # The admin logs and redirects with `form.instance`: point it at the saved row.
        form.instance.pk = saved.pk
        form.instance.refresh_from_db()

    def save_through_service(self, request, form, formsets, change):
        raise NotImplementedError

    def construct_change_message(self, request, form, formsets, add=False):
        # Inline formsets were read, not saved, so only the main form describes the change.
        return construct_change_message(form, [], add)

    def delete_model(self, request, obj):
        self.delete_through_service(request, obj)

    def delete_through_service(self, request, obj):
        raise NotImplementedError

    def get_actions(self, request):
        # The bulk "delete selected" action would bypass the services.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
