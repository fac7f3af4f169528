import json

from django.core.management.base import BaseCommand, CommandError

from events.envelope import envelope
from events.models import DeliveryStatus, Event
from events.operations import dead_events, receipts_of


class Command(BaseCommand):
    help = "List dead events, or show one in full with --show SEQUENCE."

    def add_arguments(self, parser):
        parser.add_argument("--show", type=int, metavar="SEQUENCE")
        parser.add_argument("--limit", type=int, default=100)

    def handle(self, *args, **options):
        if options["show"] is not None:
            event = Event.objects.filter(sequence=options["show"]).first()
            if event is None:
                raise CommandError(f"no event with sequence {options['show']}")
            self.stdout.write(json.dumps(envelope(event), indent=2))
            self.stdout.write(f"status: {event.status}, attempts: {event.attempts}")
            self.stdout.write(f"processed by: {', '.join(receipts_of(event)) or 'no handler'}")
            if event.last_error:
                self.stdout.write(f"last error:\n{event.last_error}")
            return
        events = dead_events(options["limit"])
        if not events:
            self.stdout.write("no dead events")
            return
        for event in events:
            first_line = event.last_error.strip().splitlines()[-1] if event.last_error else ""
            self.stdout.write(
                f"#{event.sequence} {event.type} {event.aggregate} attempts={event.attempts} "
                f"{first_line[:160]}"
            )
        total = Event.objects.filter(status=DeliveryStatus.DEAD).count()
        if total > len(events):
            self.stdout.write(f"... {total - len(events)} more")
