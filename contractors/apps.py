from django.apps import AppConfig


class ContractorsConfig(AppConfig):
    name = "contractors"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import pre_save

        from contractors.handlers import refresh_rating_summaries
        from contractors.tokens import revoke_on_credential_change
        from events.handlers import subscribe

        subscribe("contractors.rating_summary", ["ContractorRated"], refresh_rating_summaries)
        # Credentials plumbing, not business logic: a password change or a deactivation revokes
        # the user's API tokens however the user row is saved (contractors.tokens).
        pre_save.connect(
            revoke_on_credential_change,
            sender=get_user_model(),
            dispatch_uid="contractors.tokens.revoke_on_credential_change",
        )
