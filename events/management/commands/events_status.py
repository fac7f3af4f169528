from django.core.management.base import BaseCommand

from events.operations import status


class Command(BaseCommand):
    help = "EventLog delivery state: pending, in flight, dead, per-type counts and relay lag."

    def handle(self, *args, **options):
        state = status()
        lag = state.oldest_pending_age
        self.stdout.write(f"pending:   {state.pending} ({state.in_flight} in flight)")
        self.stdout.write(f"dead:      {state.dead}")
        self.stdout.write(f"delivered: {state.delivered}")
        self.stdout.write(
            "relay lag: " + (f"{lag.total_seconds():.1f}s (oldest pending)" if lag else "0s")
        )
        if state.by_type:
            self.stdout.write(f"\n{'type':<24}{'pending':>9}{'delivered':>11}{'dead':>7}")
            for event_type in sorted(state.by_type):
                counts = state.by_type[event_type]
                self.stdout.write(
                    f"{event_type:<24}{counts.get('pending', 0):>9}"
                    f"{counts.get('delivered', 0):>11}{counts.get('dead', 0):>7}"
                )
