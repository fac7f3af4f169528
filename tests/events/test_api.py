"""`GET /api/events`: the EventLog, oldest first, in the envelope of docs/events.md, filtered to
what the caller may see (contractor: its own group; dispatcher: the regions it watches, all when
it watches none; admin: everything)."""

import re
import threading
import uuid
from datetime import UTC, timedelta
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction

from events.models import Event
from events.publisher import publish_all
from events.relay import Relay
from tests.conftest import at, client_for, events_of, make_user, next_weekday
from tests.contractors.factories import ContractorFactory, RegionFactory
from tests.events.support import create_jobs

NY = ZoneInfo("America/New_York")
ENVELOPE_FIELDS = {
    "id", "sequence", "type", "version", "occurredAt", "aggregate", "groups", "payload",
}  # fmt: skip
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")


def job_body(lat: float, lng: float) -> dict:
    return {
        "type": "tile",
        "requiredSkills": ["tile"],
        "location": {"lat": lat, "lng": lng, "address": ""},
        "desiredDate": next_weekday(1).isoformat(),
        "durationMinutes": 120,
    }


@pytest.fixture
def history(db):
    """Five events made through the API, each visible to a different audience:

    created_north  JobCreated       dispatch/north
    created_south  JobCreated       dispatch/south
    assigned       JobAssigned      dispatch/north, contractor/ana
    ben_on_leave   ScheduleUpdated  dispatch/default, contractor/ben
    ana_hours      ScheduleUpdated  dispatch/default, contractor/ana
    """
    north = RegionFactory(slug="north")
    south = RegionFactory(slug="south", center_lat=39.95, center_lng=-75.16, radius_miles=25)
    ana, ben = ContractorFactory(name="Ana"), ContractorFactory(name="Ben")
    dispatcher = make_user("dispatch", role="dispatcher")
    api = client_for(dispatcher)
    day = next_weekday(1)

    north_job = api.post("/api/jobs", job_body(40.9, -73.9), format="json").json()
    south_job = api.post("/api/jobs", job_body(39.95, -75.16), format="json").json()
    assert (north_job["region"], south_job["region"]) == ("north", "south")
    start = at(day, 10, tz=NY)
    assigned = api.post(
        f"/api/jobs/{north_job['id']}/assign",
        {
            "contractorId": ana.pk,
            "start": start.isoformat(),
            "end": (start + timedelta(hours=2)).isoformat(),
        },
        format="json",
    )
    assert assigned.status_code == 201
    assert (
        api.patch(f"/api/contractors/{ben.pk}", {"status": "on_leave"}, format="json").status_code
        == 200
    )
    assert (
        api.put(
            f"/api/contractors/{ana.pk}/working-hours",
            [{"weekday": d, "start": "07:00", "end": "18:00"} for d in range(6)],
            format="json",
        ).status_code
        == 200
    )

    publish_all()  # what the relay does after commit: only published events are listed
    created_north, created_south, assigned_event, ben_on_leave, ana_hours = events_of()
    return SimpleNamespace(
        north=north,
        south=south,
        ana=ana,
        ben=ben,
        dispatcher=dispatcher,
        north_job=north_job["id"],
        south_job=south_job["id"],
        created_north=created_north,
        created_south=created_south,
        assigned=assigned_event,
        ben_on_leave=ben_on_leave,
        ana_hours=ana_hours,
        all=[created_north, created_south, assigned_event, ben_on_leave, ana_hours],
    )


def sequences(response) -> list[int]:
    return [e["sequence"] for e in response.json()["results"]]


def seqs(*events: Event) -> list[int]:
    return [e.sequence for e in events]


# --- envelope and order -----------------------------------------------------------------------


def test_events_come_oldest_first_in_the_spec_envelope(history):
    response = client_for(history.dispatcher).get("/api/events")

    assert response.status_code == 200
    body = response.json()
    assert body["next"] is None
    assert body["previous"] is None
    assert set(body) == {"next", "previous", "results"}
    assert [e["type"] for e in body["results"]] == [
        "JobCreated",
        "JobCreated",
        "JobAssigned",
        "ScheduleUpdated",
        "ScheduleUpdated",
    ]
    assert sequences(response) == seqs(*history.all)
    assert sequences(response) == sorted(sequences(response))
    for envelope in body["results"]:
        assert set(envelope) == ENVELOPE_FIELDS
        assert uuid.UUID(envelope["id"])
        assert ISO_UTC.match(envelope["occurredAt"])
        assert envelope["version"] == 1
        assert isinstance(envelope["payload"]["timestamp"], str)


def test_envelope_matches_the_event_log_row(history):
    row = history.assigned

    [envelope] = [
        e
        for e in client_for(history.dispatcher).get("/api/events").json()["results"]
        if e["type"] == "JobAssigned"
    ]

    occurred = row.occurred_at.astimezone(UTC)
    assert envelope == {
        "id": str(row.event_id),
        "sequence": row.sequence,
        "type": "JobAssigned",
        "version": 1,
        "occurredAt": occurred.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "aggregate": {"type": "job", "id": str(history.north_job)},
        "groups": ["dispatch/north", f"contractor/{history.ana.pk}"],
        "payload": row.payload,
    }
    assert envelope["payload"]["contractorId"] == history.ana.pk
    assert envelope["payload"]["jobId"] == history.north_job


# --- filters and paging -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"after": "created_south"}, ["assigned", "ben_on_leave", "ana_hours"]),
        ({"after": "ana_hours"}, []),
        ({"after": 0}, ["created_north", "created_south", "assigned", "ben_on_leave", "ana_hours"]),
        ({"type": "ScheduleUpdated"}, ["ben_on_leave", "ana_hours"]),
        ({"type": "JobCancelled"}, []),
        ({"aggregate": "job:north_job"}, ["created_north", "assigned"]),
        ({"aggregate": "job:south_job"}, ["created_south"]),
        ({"aggregate": "contractor:ana"}, ["ana_hours"]),
        ({"aggregate": "contractor:999999"}, []),
        ({"limit": 2}, ["created_north", "created_south"]),
        ({"type": "JobCreated", "after": "created_north"}, ["created_south"]),
        ({"aggregate": "job:north_job", "type": "JobAssigned"}, ["assigned"]),
    ],
)
def test_event_filters(history, query, expected):
    def resolve(value):
        if isinstance(value, int):
            return value
        kind, _, name = value.rpartition(":")
        ids = {"north_job": history.north_job, "south_job": history.south_job}
        ids |= {"ana": history.ana.pk}
        if kind:
            return f"{kind}:{ids.get(name, name)}"
        event = getattr(history, value, None)
        return event.sequence if isinstance(event, Event) else value

    response = client_for(history.dispatcher).get(
        "/api/events", {k: resolve(v) for k, v in query.items()}
    )

    assert response.status_code == 200
    assert sequences(response) == [getattr(history, name).sequence for name in expected]


def test_next_link_pages_through_everything(history):
    client = client_for(history.dispatcher)

    first = client.get("/api/events", {"limit": 2}).json()
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()

    link = urlsplit(first["next"])
    assert (link.scheme, link.netloc, link.path) == ("http", "testserver", "/api/events")
    assert parse_qs(link.query) == {
        "limit": ["2"],
        "after": [str(history.created_south.sequence)],
    }
    assert [e["sequence"] for e in first["results"] + second["results"] + third["results"]] == (
        seqs(*history.all)
    )
    assert third["next"] is None
    assert [first["previous"], second["previous"], third["previous"]] == [None, None, None]


def test_next_link_keeps_the_filters(history):
    client = client_for(history.dispatcher)

    first = client.get("/api/events", {"type": "ScheduleUpdated", "limit": 1}).json()
    second = client.get(first["next"]).json()

    assert [e["sequence"] for e in first["results"]] == [history.ben_on_leave.sequence]
    assert parse_qs(urlsplit(first["next"]).query) == {
        "type": ["ScheduleUpdated"],
        "limit": ["1"],
        "after": [str(history.ben_on_leave.sequence)],
    }
    assert [e["sequence"] for e in second["results"]] == [history.ana_hours.sequence]
    assert second["next"] is None


def test_a_full_last_page_has_no_next(history):
    response = client_for(history.dispatcher).get("/api/events", {"limit": 5})

    assert len(response.json()["results"]) == 5
    assert response.json()["next"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("aggregate", "job"),
        ("aggregate", "job:"),
        ("aggregate", ":17"),
        ("aggregate", "job:1:2"),
        ("aggregate", "Job:17"),
        ("aggregate", "job:17 OR 1=1"),
        ("type", "Nope"),
        ("type", "jobcreated"),
        ("limit", 0),
        ("limit", 1001),
        ("limit", "x"),
        ("after", -1),
        ("after", "x"),
        ("after", 2**63),
    ],
)
def test_bad_event_queries_are_400(dispatcher, field, value):
    response = client_for(dispatcher).get("/api/events", {field: value})

    assert response.status_code == 400
    assert field in response.json()


# --- visibility -------------------------------------------------------------------------------

ALL = ["created_north", "created_south", "assigned", "ben_on_leave", "ana_hours"]


def _user(history, who: str):
    if who == "ana":
        return make_user("ana", role="contractor", contractor=history.ana)
    if who == "ben":
        return make_user("ben", role="contractor", contractor=history.ben)
    if who == "north dispatcher":
        return make_user("north", role="dispatcher", regions=[RegionFactory(slug="north")])
    if who == "north and south dispatcher":
        return make_user("ns", role="dispatcher", regions=[history.north, history.south])
    if who == "dispatcher of all regions":
        return history.dispatcher
    if who == "admin":
        return make_user("boss", role="admin")
    if who == "staff":
        user = make_user("staff")
        user.is_staff = True
        user.save()
        return user
    assert who == "no role"
    return make_user("nobody")


@pytest.mark.parametrize(
    ("who", "visible"),
    [
        ("ana", ["assigned", "ana_hours"]),
        ("ben", ["ben_on_leave"]),
        ("north dispatcher", ["created_north", "assigned"]),
        ("north and south dispatcher", ["created_north", "created_south", "assigned"]),
        ("dispatcher of all regions", ALL),
        ("admin", ALL),
        ("staff", ALL),
        ("no role", []),
    ],
)
def test_each_caller_sees_only_its_events(history, who, visible):
    response = client_for(_user(history, who)).get("/api/events")

    assert response.status_code == 200
    assert sequences(response) == [getattr(history, name).sequence for name in visible]


def test_a_contractor_sees_exactly_its_own_group(history):
    user = make_user("ana", role="contractor", contractor=history.ana)

    results = client_for(user).get("/api/events").json()["results"]

    assert results
    assert all(f"contractor/{history.ana.pk}" in e["groups"] for e in results)
    assert (
        len(results)
        == Event.objects.filter(groups__contains=[f"contractor/{history.ana.pk}"]).count()
    )


def test_a_north_dispatcher_sees_only_dispatch_north(history):
    user = make_user("north", role="dispatcher", regions=[history.north])

    results = client_for(user).get("/api/events").json()["results"]

    assert results
    assert all("dispatch/north" in e["groups"] for e in results)
    assert len(results) == Event.objects.filter(groups__contains=["dispatch/north"]).count()


@pytest.mark.parametrize(
    ("query", "visible"),
    [
        ({"type": "JobCreated"}, []),
        ({"aggregate": "job:south_job"}, []),
        ({"aggregate": "job:north_job"}, ["assigned"]),
        ({"aggregate": "contractor:ben"}, []),
        ({"limit": 1}, ["assigned"]),
    ],
)
def test_filters_never_widen_what_a_contractor_sees(history, query, visible):
    user = make_user("ana", role="contractor", contractor=history.ana)
    names = {
        "job:south_job": f"job:{history.south_job}",
        "job:north_job": f"job:{history.north_job}",
        "contractor:ben": f"contractor:{history.ben.pk}",
    }

    response = client_for(user).get("/api/events", {k: names.get(v, v) for k, v in query.items()})

    assert response.status_code == 200
    assert sequences(response) == [getattr(history, name).sequence for name in visible]


def test_a_contractors_next_link_stays_within_its_events(history):
    client = client_for(make_user("ana", role="contractor", contractor=history.ana))

    first = client.get("/api/events", {"limit": 1}).json()
    second = client.get(first["next"]).json()

    assert [e["sequence"] for e in first["results"]] == [history.assigned.sequence]
    assert [e["sequence"] for e in second["results"]] == [history.ana_hours.sequence]
    assert second["next"] is None


def test_events_need_credentials(history):
    response = client_for(None).get("/api/events")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


# --- a cursor that never skips a late commit ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_poller_following_next_links_gets_an_event_whose_transaction_committed_late():
    """A poller keeps calling its `next` link while a transaction that recorded first commits
    last: the late event comes on a later page, never behind the cursor already handed out."""
    admin = client_for(make_user("root", role="admin"))
    recorded, may_commit = threading.Event(), threading.Event()
    late: dict = {}

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                [job] = create_jobs(1)
                late["job"] = job.pk
                recorded.set()
                may_commit.wait(timeout=20)
        finally:
            recorded.set()
            connection.close()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    try:
        assert recorded.wait(timeout=10)
        create_jobs(2)  # recorded after the slow one, committed before it
        Relay(name="poller").drain()
        page = admin.get("/api/events?limit=1").json()
        seen = [e["payload"]["jobId"] for e in page["results"]]
        page = admin.get(page["next"]).json()
        seen += [e["payload"]["jobId"] for e in page["results"]]
        cursor = page["results"][-1]["sequence"]
        assert admin.get(f"/api/events?after={cursor}").json()["results"] == []
    finally:
        may_commit.set()
        writer.join(timeout=10)
    Relay(name="poller").drain()

    rest = admin.get(f"/api/events?after={cursor}").json()["results"]
    assert [e["payload"]["jobId"] for e in rest] == [late["job"]]
    assert late["job"] not in seen
