import json

from django.core.management.base import BaseCommand, CommandError

from events.envelope import envelope
from events.models import Event
from events.operations import dead_count, dead_deliveries, deliveries_of, known_subscriber
from events.relay import last_line


class Command(BaseCommand):
    help = (
        "List dead deliveries (all subscribers, or --subscriber NAME), or show one event in "
        "full with --show SEQUENCE: its envelope and where it stands with every subscriber."
    )

    def add_arguments(self, parser):
        parser.add_argument("--show", type=int, metavar="SEQUENCE")
        parser.add_argument("--subscriber", metavar="NAME")
        parser.add_argument("--limit", type=int, default=100)

    def handle(self, *args, **options):
        if options["show"] is not None:
            event = Event.objects.filter(sequence=options["show"]).first()
            if event is None:
                raise CommandError(f"no event with sequence {options['show']}")
            self.stdout.write(json.dumps(envelope(event), indent=2))
            for delivery in deliveries_of(event):
                attempts = f" attempts={delivery.attempts}" if delivery.attempts else ""
                self.stdout.write(f"{delivery.subscriber}: {delivery.state}{attempts}")
                if delivery.last_error:
                    error = "\n".join(f"    {line}" for line in delivery.last_error.splitlines())
                    self.stdout.write(f"  last error:\n{error}")
            return
        if options["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        subscriber = options["subscriber"]
        if subscriber is not None:
            try:
                known_subscriber(subscriber)
            except KeyError as exc:
                raise CommandError(str(exc.args[0])) from exc
        dead = dead_deliveries(subscriber=subscriber, limit=options["limit"])
        if not dead:
            self.stdout.write("no dead events")
            return
        for failure in dead:
            event = failure.event
            self.stdout.write(
                f"#{event.sequence} {event.type} {event.aggregate} {failure.subscriber_id} "
                f"attempts={failure.attempts} {last_line(failure.last_error)[:160]}"
            )
        total = dead_count(subscriber=subscriber)
        if total > len(dead):
            self.stdout.write(f"... {total - len(dead)} more")
