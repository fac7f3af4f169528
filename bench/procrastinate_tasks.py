"""The job-queue alternative's one task: deliver one recorded event to every subscribed handler
(`bench.alternatives.deliver`). Imported only where procrastinate's Django app is installed
(`bench.settings_procrastinate`), with Django set up."""

from procrastinate.contrib.django import app

from bench.alternatives import PROCRASTINATE_QUEUE


@app.task(name="bench.deliver_event", queue=PROCRASTINATE_QUEUE)
def deliver_event(event_id: int) -> None:
    from bench.alternatives import deliver
    from events.models import Event

    deliver([Event.objects.get(pk=event_id)])
