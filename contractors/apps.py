from django.apps import AppConfig


class ContractorsConfig(AppConfig):
    name = "contractors"

    def ready(self) -> None:
        from contractors.handlers import refresh_rating_summaries
        from events.handlers import subscribe

        subscribe("contractors.rating_summary", ["ContractorRated"], refresh_rating_summaries)
