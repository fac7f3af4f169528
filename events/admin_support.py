"""Admin pages that write through services.

`ServiceAdmin` routes saves and deletes to services (subclasses implement `save_through_service`
and `delete_through_service`). A domain error raised while saving rolls the admin's transaction
back (nothing is written) and the same form is shown again, with what was typed and the
service's reasons in plain words on the fields they concern (`service_error_fields` maps the
services' field names, which are the API's, to the form's). The services hold every rule, so
the admin refuses exactly what the API refuses.
"""

import re

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import construct_change_message
from django.core.exceptions import ValidationError
from django.forms.models import InlineForeignKeyField, construct_instance
from django.http import HttpResponseRedirect

from events.errors import DomainError, Invalid


def error_text(exc: DomainError) -> str:
    if isinstance(exc, Invalid):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.errors.items())
    return exc.message


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def add_service_errors(form, exc: DomainError, field_names: dict[str, str]) -> None:
    """Put a service's refusal on the form: per field where the form has that field, else at
    the top. Conflicts and other domain errors read as one sentence at the top."""
    if not isinstance(exc, Invalid):
        form.add_error(None, exc.message)
        return
    for field, messages_ in exc.errors.items():
        name = field_names.get(field, _snake(field))
        target = next(
            (n for n in (name, name.removesuffix("_id")) if n in form.fields),
            None,
        )
        label = field_names.get(field, _snake(field)).replace("_", " ")
        for message in messages_:
            if target is None:
                form.add_error(None, f"{label.capitalize()}: {message}")
            else:
                form.add_error(target, message)


class ServiceModelForm(forms.ModelForm):
    """A model form whose rules are the services': fields are cleaned (types, choices, the
    fields' validators), but the model's constraints are not checked here. The service checks
    the same rules in plain words, and the database constraints back it up; checked here they
    would only read 'Constraint "slot_not_empty" is violated.'"""

    def _post_clean(self):
        opts = self._meta
        exclude = self._get_validation_exclusions()
        # As Django's own: an inline's link to its parent is not validated here (it is set on
        # save, by the service).
        exclude |= {n for n, f in self.fields.items() if isinstance(f, InlineForeignKeyField)}
        try:
            self.instance = construct_instance(self, self.instance, opts.fields, opts.exclude)
        except ValidationError as exc:
            self._update_errors(exc)
        try:
            self.instance.full_clean(
                exclude=exclude,
                validate_unique=False,
                validate_constraints=False,
            )
        except ValidationError as exc:
            self._update_errors(exc)


class ServiceAdmin(admin.ModelAdmin):
    # The services' (API) field names that the form calls otherwise, e.g. {"contractorId":
    # "contractor"}; camelCase names find their snake_case field without help.
    service_error_fields: dict[str, str] = {}

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as exc:
            if request.method != "POST":
                self.message_user(request, error_text(exc), level=messages.ERROR)
                return HttpResponseRedirect(request.get_full_path())
            # Rolled back. Show the same form again: bound to what was posted, and invalid
            # because of the service's reasons (so nothing is saved on this second pass).
            request._service_error = exc
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)
        error = getattr(request, "_service_error", None)
        if error is None:
            return form_class
        field_names = self.service_error_fields

        class RefusedByService(form_class):
            def clean(self):
                cleaned = super().clean()
                add_service_errors(self, error, field_names)
                return cleaned

        return RefusedByService

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
