from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "events.webhooks"
    label = "webhooks"
    verbose_name = "Webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from events.handlers import add_provider
        from events.webhooks.delivery import webhook_subscriptions

        # One independent subscriber per active endpoint, looked up as endpoints change.
        add_provider("webhooks", webhook_subscriptions)
