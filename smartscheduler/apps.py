from django.apps import AppConfig


class SmartSchedulerConfig(AppConfig):
    name = "smartscheduler"
    verbose_name = "SmartScheduler"
