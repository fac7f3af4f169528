"""`python manage.py relay`: drain the EventLog to handlers and Channels groups."""

import logging
import signal
import threading
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from events.relay import Outage, Relay, RelayConfig


class Command(BaseCommand):
    help = "Deliver pending events at least once to every handler and Channels group."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=200)
        parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds, max 1")
        parser.add_argument("--max-attempts", type=int, default=10)
        parser.add_argument("--lease", type=float, default=60.0, help="claim lease, seconds")
        parser.add_argument("--once", action="store_true", help="drain what is pending and exit")
        parser.add_argument("--metrics-port", type=int, default=0, help="serve /metrics here")
        parser.add_argument(
            "--metrics-address",
            default="127.0.0.1",
            help="address the metrics port listens on (default: this machine only)",
        )
        parser.add_argument("--log-level", default="INFO")
        parser.add_argument("--name", default="", help="relay name in claims and logs")

    def handle(self, *args, **options):
        if options["batch_size"] < 1 or options["max_attempts"] < 1 or options["lease"] <= 0:
            raise CommandError("--batch-size, --max-attempts and --lease must be positive")
        if not 0 < options["poll_interval"] <= 1.0:
            raise CommandError("--poll-interval must be more than 0 and at most 1 second")
        level = logging.getLevelName(options["log_level"].upper())
        if not isinstance(level, int):
            raise CommandError(f"unknown --log-level {options['log_level']!r}")
        logging.getLogger("events").setLevel(level)
        relay = Relay(
            RelayConfig(
                batch_size=options["batch_size"],
                poll_interval=options["poll_interval"],
                max_attempts=options["max_attempts"],
                lease=timedelta(seconds=options["lease"]),
            ),
            name=options["name"] or None,
        )
        if options["once"]:
            try:
                count = relay.drain()
            except Outage as exc:
                raise CommandError(f"a store is unreachable: {exc}") from exc
            self.stdout.write(f"drained {count} event(s)")
            return
        if options["metrics_port"]:
            from prometheus_client import start_http_server

            start_http_server(options["metrics_port"], addr=options["metrics_address"])
        stop = threading.Event()

        def request_stop(signum, frame):
            logging.getLogger("events.relay").info("relay stopping (signal %d)", signum)
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        logging.getLogger("events.relay").info("relay started name=%s", relay.name)
        relay.run_forever(stop)
        logging.getLogger("events.relay").info("relay stopped name=%s", relay.name)
