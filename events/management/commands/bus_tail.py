from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from kombu.exceptions import OperationalError

from events.bus import tail
from events.catalog import EVENT_TYPES


class Command(BaseCommand):
    help = (
        "Print events from the message bus (EVENT_BUS_URL) as JSON lines as they arrive, "
        "duplicates dropped by id. For operators, and an example consumer (docs/bus.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--types", default="", help="comma-separated event types (default: every type)"
        )
        parser.add_argument(
            "--queue",
            help="a durable named queue, kept when this exits (default: a temporary one)",
        )
        parser.add_argument("--count", type=int, help="exit after this many events")
        parser.add_argument("--timeout", type=float, help="exit after this many seconds")

    def handle(self, *args, **options):
        if not settings.EVENT_BUS_URL:
            raise CommandError("EVENT_BUS_URL is not set: there is no bus to read")
        types = [name.strip() for name in options["types"].split(",") if name.strip()]
        unknown = sorted(set(types) - set(EVENT_TYPES))
        if unknown:
            raise CommandError(f"unknown event type(s): {', '.join(unknown)}")
        count, timeout = options["count"], options["timeout"]
        if count is not None and count < 1:
            raise CommandError("--count must be at least 1")

        def emit(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        def ready(queue: str) -> None:
            keys = ",".join(types) or "#"
            self.stderr.write(f"bus_tail: listening on queue {queue} for {keys}")
            self.stderr.flush()

        try:
            result = tail(
                types=types,
                queue=options["queue"],
                count=count,
                timeout=timeout,
                emit=emit,
                ready=ready,
            )
        except OperationalError as exc:
            raise CommandError(f"cannot reach the message bus: {exc}") from exc
        except KeyboardInterrupt:  # an operator's Ctrl-C: a normal way to stop
            return
        if count is not None and result.printed < count:
            raise CommandError(f"{result.printed} of {count} event(s) arrived within {timeout}s")
