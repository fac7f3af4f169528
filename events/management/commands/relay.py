"""`python manage.py relay`: deliver the EventLog to every subscriber, each on its own."""

import logging
import signal
import sys
import threading
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from events import handlers
from events.relay import DEFAULT_LINGER, Outage, Relay, RelayConfig

SWITCH_INTERVAL = 0.001  # seconds


def own_connections() -> None:
    """Each relay thread keeps one connection for its whole life, so the relay opens its own
    instead of borrowing from the pool sized for request threads (which would run dry)."""
    for alias in connections:
        options = connections.settings[alias].get("OPTIONS", {})
        if options.pop("pool", None) is not None:
            connections[alias].close()


class Command(BaseCommand):
    help = "Deliver published events at least once to every subscriber, each independently."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds, max 1")
        parser.add_argument("--lease", type=float, default=30.0, help="subscriber lease, seconds")
        parser.add_argument(
            "--linger",
            type=float,
            default=DEFAULT_LINGER,
            help="seconds from one step of a handler, the bus or a webhook to its next under a "
            f"steady stream (max 1, default {DEFAULT_LINGER}); the broadcast never lingers",
        )
        parser.add_argument("--once", action="store_true", help="deliver what is due and exit")
        parser.add_argument("--metrics-port", type=int, default=0, help="serve /metrics here")
        parser.add_argument(
            "--metrics-address",
            default="127.0.0.1",
            help="address the metrics port listens on (default: this machine only)",
        )
        parser.add_argument("--log-level", default="INFO")
        parser.add_argument("--name", default="", help="relay name in leases and logs")
        parser.add_argument(
            "--subscribers",
            default="",
            help="deliver only to these of the project's subscribers (comma-separated names, "
            "see events_status; webhook endpoints are served by relays of every subscriber); "
            "those relays leave them to this one while it runs",
        )

    def handle(self, *args, **options):
        if options["batch_size"] < 1 or options["lease"] <= 0:
            raise CommandError("--batch-size and --lease must be positive")
        if not 0 < options["poll_interval"] <= 1.0:
            raise CommandError("--poll-interval must be more than 0 and at most 1 second")
        if not 0 <= options["linger"] <= 1.0:
            raise CommandError("--linger must be from 0 to 1 second")
        level = logging.getLevelName(options["log_level"].upper())
        if not isinstance(level, int):
            raise CommandError(f"unknown --log-level {options['log_level']!r}")
        logging.getLogger("events").setLevel(level)
        dedicated_to = self.dedicated_to(options["subscribers"])
        own_connections()
        # The subscribers' threads share one interpreter: a thread whose database or Redis
        # reply has arrived (the broadcast, mostly waiting on sockets) gets the GIL back
        # within this long of a handler's pure-Python work, not Python's default 5 ms, which
        # stacked up over a step's round trips.
        sys.setswitchinterval(SWITCH_INTERVAL)
        relay = Relay(
            RelayConfig(
                batch_size=options["batch_size"],
                poll_interval=options["poll_interval"],
                lease=timedelta(seconds=options["lease"]),
                linger=options["linger"],
                dedicated_to=dedicated_to,
            ),
            name=options["name"] or None,
        )
        if options["once"]:
            try:
                count = relay.drain()
            except Outage as exc:
                raise CommandError(f"a store is unreachable: {exc}") from exc
            finally:
                relay.release()
            self.stdout.write(f"delivered {count} event(s) to their subscribers")
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
        logging.getLogger("events.relay").info(
            "relay started name=%s subscribers=%s",
            relay.name,
            ",".join(sorted(dedicated_to)) or "all",
        )
        relay.run_forever(stop)
        logging.getLogger("events.relay").info("relay stopped name=%s", relay.name)

    def dedicated_to(self, names: str) -> frozenset[str]:
        wanted = frozenset(filter(None, (name.strip() for name in names.split(","))))
        # The project's own subscribers: known without the database, which may be down yet.
        known = {sub.name for sub in handlers.subscriptions(dynamic=False)}
        if unknown := sorted(wanted - known):
            raise CommandError(
                f"--subscribers: no subscriber named {', '.join(unknown)} "
                f"(known: {', '.join(sorted(known))})"
            )
        return wanted
