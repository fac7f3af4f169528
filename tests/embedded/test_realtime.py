"""Websockets, resume and the board on the embedded default: the in-memory channel layer, events
relayed by the real relay (driven by the test, as the in-process relay would), resume replayed
from the EventLog on SQLite."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client

from contractors.services import Location
from events.models import Event
from events.publisher import publish_all
from events.relay import Relay
from scheduling.services import create_job
from smartscheduler.asgi import application
from tests.conftest import make_user, next_weekday, token_for

WAIT = 5.0


@database_sync_to_async
def record_job() -> Event:
    job = create_job(
        type="tile",
        location=Location(lat=40.72, lng=-73.99),
        desired_date=next_weekday(1),
        duration_minutes=60,
    )
    publish_all()  # given its sequence, as the relay's publisher does right after commit
    return Event.objects.get(type="JobCreated", aggregate_id=str(job.pk))


@database_sync_to_async
def drain() -> int:
    return Relay().drain()


@database_sync_to_async
def dispatcher_token() -> str:
    return token_for(make_user("nora", role="dispatcher"))


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_resume_replays_what_was_missed_then_goes_live():
    token = await dispatcher_token()
    seen = await record_job()
    missed = [await record_job(), await record_job()]
    await drain()

    path = f"/ws/dispatch/?token={token}&after={seen.sequence}"
    stream = WebsocketCommunicator(application, path)
    try:
        assert await stream.connect(timeout=WAIT) == (True, None)
        replayed = []
        while (frame := await stream.receive_json_from(timeout=WAIT))["kind"] == "event":
            replayed.append(frame["event"]["id"])
        assert frame == {"kind": "replayed", "through": missed[-1].sequence}
        # A replay may repeat what the client saw (it drops those by id); nothing else.
        assert [i for i in replayed if i != str(seen.event_id)] == [str(e.event_id) for e in missed]

        # The broadcast goes through the in-memory layer; a second event, broadcast after the
        # first, must come next: nothing else was on its way.
        for _ in range(2):
            live = await record_job()
            await drain()
            frame = await stream.receive_json_from(timeout=WAIT)
            assert (frame["kind"], frame["event"]["id"]) == ("event", str(live.event_id))
    finally:
        await stream.disconnect()
        await database_sync_to_async(connections.close_all)()


@pytest.mark.django_db
def test_the_board_and_the_contractor_page_render():
    from tests.contractors.factories import ContractorFactory

    browser = Client()
    make_user("dana", role="dispatcher")
    browser.force_login(User.objects.get(username="dana"))
    response = browser.get("/")
    assert response.status_code == 200
    assert b"<html" in response.content.lower()

    browser = Client()
    make_user("cy", role="contractor", contractor=ContractorFactory())
    browser.force_login(User.objects.get(username="cy"))
    response = browser.get("/me/")
    assert response.status_code == 200
