"""The bench's Django app (bench/settings_bench.py only): in every process of a run, install the
delivery the run compares (BENCH_DELIVERY, a mode of bench/alternatives.py; default "relay",
which installs nothing), so daphne's requests record and deliver that way."""

import os

from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "bench"
    label = "bench"

    def ready(self) -> None:
        from bench import alternatives

        alternatives.install(os.environ.get("BENCH_DELIVERY", "relay"))
