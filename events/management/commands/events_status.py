from django.core.management.base import BaseCommand

from events.operations import status


def age(delta) -> str:
    return f"{delta.total_seconds():.1f}s" if delta else "0s"


class Command(BaseCommand):
    help = (
        "EventLog delivery state per subscriber: position, pending, retrying, dead, "
        "oldest pending age, owner and outages."
    )

    def handle(self, *args, **options):
        state = status()
        self.stdout.write(f"head:        {state.head} (highest published sequence)")
        self.stdout.write(
            f"unpublished: {state.unpublished} (oldest {age(state.oldest_unpublished_age)})"
        )
        if not state.subscribers:
            self.stdout.write("no subscribers yet (no relay has run)")
            return
        self.stdout.write(
            f"\n{'subscriber':<34}{'position':>10}{'pending':>9}{'retrying':>10}{'dead':>6}"
            f"{'oldest':>9}  owner"
        )
        for sub in state.subscribers:
            name = sub.name if sub.registered else f"{sub.name} (not subscribed)"
            self.stdout.write(
                f"{name:<34}{sub.position:>10}{sub.pending:>9}{sub.retrying:>10}{sub.dead:>6}"
                f"{age(sub.oldest_pending_age):>9}  {sub.owner or '-'}"
            )
            if sub.outage_since:
                self.stdout.write(
                    f"    outage since {sub.outage_since:%Y-%m-%d %H:%M:%S}Z: "
                    f"{sub.outage_error.splitlines()[0][:120] if sub.outage_error else ''}"
                )
