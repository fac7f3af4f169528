"""Contractors, working hours, time off, regions and tokens over HTTP (docs/api.md).

Every successful write is checked for the exact events it records; every rejection for its
status code, its per-field message and that it recorded nothing.
"""

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from knox.models import AuthToken

from contractors.models import Contractor, Region, TimeOff, WorkingHours
from tests.conftest import (
    assert_first_page,
    at,
    client_for,
    events_of,
    make_user,
    next_weekday,
    token_for,
)
from tests.contractors.factories import ContractorFactory, RegionFactory, TimeOffFactory
from tests.contractors.support import assert_schedule_updated
from tests.scheduling.factories import AssignmentFactory, JobFactory

NY = ZoneInfo("America/New_York")

CONTRACTOR_FIELDS = {
    "id", "name", "type", "skills", "location", "region", "timezone", "status",
    "workingHours", "timeOff", "averageRating", "ratingCount", "userId", "createdAt",
    "updatedAt",
}  # fmt: skip
REGION_FIELDS = {"id", "slug", "name", "center", "radiusMiles"}
DEFAULT_HOURS = [{"weekday": d, "start": "08:00", "end": "17:00"} for d in range(5)]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def contractor_body(**overrides) -> dict:
    """The example contractor of docs/api.md."""
    body = {
        "name": "Ana Ruiz",
        "type": "tile",
        "skills": ["tile", "grout"],
        "location": {"lat": 40.71, "lng": -74.0, "address": "1 Main St, New York"},
        "timezone": "America/New_York",
        "status": "active",
        "workingHours": [{"weekday": 0, "start": "08:00", "end": "17:00"}],
    }
    body.update(overrides)
    return body


def hours_of(contractor: Contractor) -> list[tuple[int, time, time]]:
    return list(
        WorkingHours.objects.filter(contractor=contractor)
        .order_by("weekday", "start")
        .values_list("weekday", "start", "end")
    )


# --- create -----------------------------------------------------------------------------------


def test_create_contractor_answers_201_with_spec_shape_and_records_schedule_updated(api):
    RegionFactory(slug="north")  # 40.9, -73.9, 25 miles: covers lower Manhattan (14 miles)

    response = api.post("/api/contractors", contractor_body(), format="json")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == CONTRACTOR_FIELDS
    contractor = Contractor.objects.get()
    assert body["id"] == contractor.pk
    assert body["name"] == "Ana Ruiz"
    assert body["type"] == "tile"
    assert body["skills"] == ["grout", "tile"]
    assert body["location"] == {"lat": 40.71, "lng": -74.0, "address": "1 Main St, New York"}
    assert body["region"] == "north"
    assert body["timezone"] == "America/New_York"
    assert body["status"] == "active"
    assert body["workingHours"] == [{"weekday": 0, "start": "08:00", "end": "17:00"}]
    assert body["timeOff"] == []
    assert body["averageRating"] is None
    assert body["ratingCount"] == 0
    assert body["userId"] is None
    assert body["createdAt"].endswith("Z")
    assert_schedule_updated(
        contractor,
        previous={"status": None, "workingHours": None},
        new={
            "status": "active",
            "workingHours": [{"weekday": 0, "start": "08:00", "end": "17:00"}],
        },
        region="north",
    )


def test_create_contractor_without_hours_gets_monday_to_friday_eight_to_five(api):
    body = contractor_body()
    del body["workingHours"]

    response = api.post("/api/contractors", body, format="json")

    assert response.status_code == 201
    assert response.json()["workingHours"] == DEFAULT_HOURS
    assert response.json()["region"] == "default"
    [event] = events_of()
    assert event.groups == ["dispatch/default", f"contractor/{response.json()['id']}"]
    assert event.payload["newValues"] == {"status": "active", "workingHours": DEFAULT_HOURS}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "america/new_york"}, "timezone"),
        # Loadable by zoneinfo, but not a place (or easy to misread): refused.
        ({"timezone": "localtime"}, "timezone"),
        ({"timezone": "EST5EDT"}, "timezone"),
        ({"timezone": "UTC+3"}, "timezone"),
        ({"timezone": "CET"}, "timezone"),
        ({"timezone": "Etc/GMT+3"}, "timezone"),
        ({"timezone": "US/Eastern"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"type": "plumbing"}, "type"),
        ({"status": "retired"}, "status"),
        ({"name": ""}, "name"),
        ({"skills": "tile"}, "skills"),
        ({"location": {"lat": 91, "lng": -74.0}}, "location"),
        ({"location": {"lat": 40.7, "lng": "west"}}, "location"),
        (
            {
                "workingHours": [
                    {"weekday": 0, "start": "08:00", "end": "12:00"},
                    {"weekday": 0, "start": "11:30", "end": "17:00"},
                ]
            },
            "workingHours",
        ),
        ({"workingHours": [{"weekday": 7, "start": "08:00", "end": "17:00"}]}, "workingHours"),
    ],
)
def test_create_contractor_rejects_bad_input_with_a_field_message(api, overrides, field):
    response = api.post("/api/contractors", contractor_body(**overrides), format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert Contractor.objects.count() == 0
    assert WorkingHours.objects.count() == 0
    assert events_of() == []


def test_invalid_timezone_message_names_the_timezone_field(api):
    response = api.post(
        "/api/contractors", contractor_body(timezone="Europe/Atlantis"), format="json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "timezone": [
            "'Europe/Atlantis' is not a timezone name we accept: use an IANA Area/Location name "
            "such as 'America/New_York' or 'Europe/Berlin' (or 'UTC'); leave it out to take the "
            "zone of the base location."
        ]
    }


@pytest.mark.parametrize("name", ["UTC", "Etc/UTC", "Europe/Berlin", "America/Indiana/Knox"])
def test_utc_and_area_location_names_are_accepted(api, name):
    response = api.post("/api/contractors", contractor_body(timezone=name), format="json")

    assert response.status_code == 201
    assert Contractor.objects.get().timezone == name


@pytest.mark.parametrize(
    ("location", "zone"),
    [
        ({"lat": 40.7357, "lng": -74.1724, "address": "Newark, NJ"}, "America/New_York"),
        ({"lat": 41.8781, "lng": -87.6298, "address": "Chicago"}, "America/Chicago"),
        ({"lat": 52.52, "lng": 13.405, "address": "Berlin"}, "Europe/Berlin"),
        # At sea only the nautical Etc/GMT zones apply, which are not accepted: UTC.
        ({"lat": 0.0, "lng": -30.0, "address": "Mid-Atlantic"}, "UTC"),
    ],
)
def test_a_contractor_created_without_a_timezone_gets_its_locations(api, location, zone):
    body = contractor_body(location=location)
    del body["timezone"]

    response = api.post("/api/contractors", body, format="json")

    assert response.status_code == 201
    assert response.json()["timezone"] == zone
    assert Contractor.objects.get().timezone == zone


def test_a_newark_contractor_without_a_timezone_works_newark_hours(api):
    """The default Monday 08:00-17:00 is local time: 13:00-22:00 UTC in winter, 12:00-21:00 in
    summer, never 08:00 UTC (03:00 in Newark)."""
    body = contractor_body(location={"lat": 40.7357, "lng": -74.1724, "address": "Newark"})
    del body["timezone"]
    del body["workingHours"]
    created = api.post("/api/contractors", body, format="json").json()
    monday = next_weekday(0)

    response = api.get(
        f"/api/contractors/{created['id']}/availability",
        {"from": monday.isoformat(), "to": monday.isoformat(), "duration": 60},
    )

    assert response.status_code == 200
    assert response.json()["windows"] == [
        {"start": iso(at(monday, 8, tz=NY)), "end": iso(at(monday, 17, tz=NY))}
    ]


# --- list -------------------------------------------------------------------------------------


@pytest.fixture
def crew(db):
    """Three contractors that differ in every filterable field, plus a deleted one."""
    return {
        "ana": ContractorFactory(
            name="Ana", type="tile", status="active", skills=["grout", "tile"]
        ),
        "ben": ContractorFactory(
            name="Ben", type="carpet", status="inactive", region="north", skills=["carpet"]
        ),
        "cy": ContractorFactory(
            name="Cy", type="multi", status="on_leave", skills=["tile", "wood"]
        ),
        "gone": ContractorFactory(
            name="Gone", type="tile", skills=["tile"], deleted_at=datetime(2026, 1, 1, tzinfo=UTC)
        ),
    }


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ({}, ["Ana", "Ben", "Cy"]),
        ({"type": "tile"}, ["Ana"]),
        ({"type": "multi"}, ["Cy"]),
        ({"status": "inactive"}, ["Ben"]),
        ({"status": "on_leave"}, ["Cy"]),
        ({"region": "north"}, ["Ben"]),
        ({"region": "default"}, ["Ana", "Cy"]),
        ({"region": "south"}, []),
        ({"skill": "tile"}, ["Ana", "Cy"]),
        ({"skill": "TILE"}, ["Ana", "Cy"]),
        ({"skill": "wood"}, ["Cy"]),
        ({"skill": "tile", "status": "active"}, ["Ana"]),
    ],
)
def test_list_contractors_filters(api, crew, query, names):
    response = api.get("/api/contractors", query)

    assert response.status_code == 200
    body = response.json()
    assert [c["name"] for c in body["results"]] == names
    assert body["count"] == len(names)


@pytest.mark.parametrize(
    ("query", "field"),
    [({"type": "plumbing"}, "type"), ({"status": "busy"}, "status"), ({"region": "a b"}, "region")],
)
def test_list_contractors_rejects_bad_filters(api, crew, query, field):
    response = api.get("/api/contractors", query)

    assert response.status_code == 400
    assert field in response.json()


def test_list_contractors_is_paginated_with_count_next_previous_results(api, crew):
    first = api.get("/api/contractors", {"limit": 2})

    next_url = "http://testserver/api/contractors?limit=2&offset=2"
    page = assert_first_page(first, count=3, next_url=next_url, fields=CONTRACTOR_FIELDS)
    assert [c["name"] for c in page["results"]] == ["Ana", "Ben"]

    second = api.get(page["next"]).json()

    assert second["next"] is None
    assert second["previous"] == "http://testserver/api/contractors?limit=2"
    assert [c["name"] for c in second["results"]] == ["Cy"]


def test_contractor_login_lists_only_itself(crew):
    user = make_user("ana", role="contractor", contractor=crew["ana"])

    response = client_for(user).get("/api/contractors")

    assert response.status_code == 200
    assert [c["name"] for c in response.json()["results"]] == ["Ana"]
    assert response.json()["results"][0]["userId"] == user.pk


# --- read, update ------------------------------------------------------------------------------


def test_get_contractor_shows_hours_and_time_off(api):
    contractor = ContractorFactory(name="Ana")
    day = next_weekday(2)
    entry = TimeOffFactory(
        contractor=contractor, start=at(day, 8, tz=NY), end=at(day, 12, tz=NY), reason="dentist"
    )

    response = api.get(f"/api/contractors/{contractor.pk}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == CONTRACTOR_FIELDS
    assert body["workingHours"] == DEFAULT_HOURS
    assert body["timeOff"] == [
        {
            "id": entry.pk,
            "start": iso(at(day, 8, tz=NY)),
            "end": iso(at(day, 12, tz=NY)),
            "reason": "dentist",
        }
    ]


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_unknown_contractor_is_404(api, method):
    response = getattr(api, method)("/api/contractors/999999", {}, format="json")

    assert response.status_code == 404
    assert events_of() == []


def test_patch_status_records_schedule_updated_with_previous_and_new_values(api):
    contractor = ContractorFactory(name="Ana")

    response = api.patch(f"/api/contractors/{contractor.pk}", {"status": "on_leave"}, format="json")

    assert response.status_code == 200
    assert response.json()["status"] == "on_leave"
    assert set(response.json()) == CONTRACTOR_FIELDS
    contractor.refresh_from_db()
    assert contractor.status == "on_leave"
    assert_schedule_updated(contractor, previous={"status": "active"}, new={"status": "on_leave"})


def test_patch_location_rederives_the_region(api):
    RegionFactory(slug="north")
    contractor = ContractorFactory(lat=34.05, lng=-118.24, address="LA")

    response = api.patch(
        f"/api/contractors/{contractor.pk}",
        {"location": {"lat": 40.9, "lng": -73.9, "address": "Yonkers"}},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["region"] == "north"
    assert response.json()["location"] == {"lat": 40.9, "lng": -73.9, "address": "Yonkers"}
    assert_schedule_updated(
        contractor,
        previous={"location": {"lat": 34.05, "lng": -118.24, "address": "LA"}, "region": "default"},
        new={"location": {"lat": 40.9, "lng": -73.9, "address": "Yonkers"}, "region": "north"},
        region="north",
        left="default",  # the dispatchers of the region it left hear of it too
    )


def test_patch_with_unchanged_values_records_nothing(api):
    contractor = ContractorFactory(name="Ana")

    response = api.patch(
        f"/api/contractors/{contractor.pk}", {"name": "Ana", "status": "active"}, format="json"
    )

    assert response.status_code == 200
    assert events_of() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"timezone": "Not/AZone"}, "timezone"),
        ({"name": "Bob", "timezone": "Not/AZone"}, "timezone"),
        ({"status": "retired"}, "status"),
        ({"location": {"lat": 40.0, "lng": 181}}, "location"),
        ({"skills": [""] * 51}, "skills"),
    ],
)
def test_patch_rejects_bad_input_and_changes_nothing(api, body, field):
    contractor = ContractorFactory(name="Ana")

    response = api.patch(f"/api/contractors/{contractor.pk}", body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    contractor.refresh_from_db()
    assert (contractor.name, contractor.timezone, contractor.status) == (
        "Ana",
        "America/New_York",
        "active",
    )
    assert events_of() == []


# --- soft delete ------------------------------------------------------------------------------


def test_delete_is_a_soft_delete_then_404(api):
    contractor = ContractorFactory(name="Ana")

    response = api.delete(f"/api/contractors/{contractor.pk}")

    assert response.status_code == 204
    assert response.content == b""
    contractor.refresh_from_db()
    assert contractor.deleted_at is not None
    assert contractor.status == "inactive"
    assert_schedule_updated(
        contractor,
        previous={"status": "active", "deleted": False},
        new={"status": "inactive", "deleted": True},
    )
    assert api.get(f"/api/contractors/{contractor.pk}").status_code == 404
    assert api.delete(f"/api/contractors/{contractor.pk}").status_code == 404
    assert api.get("/api/contractors").json()["results"] == []
    assert len(events_of()) == 1


@pytest.mark.parametrize("status", ["scheduled", "in_progress"])
def test_delete_is_409_while_the_contractor_has_a_live_assignment(api, status):
    contractor = ContractorFactory()
    AssignmentFactory(contractor=contractor, start=at(next_weekday(1), 10, tz=NY), status=status)

    response = api.delete(f"/api/contractors/{contractor.pk}")

    assert response.status_code == 409
    assert response.json()["code"] == "contractor_busy"
    contractor.refresh_from_db()
    assert contractor.deleted_at is None
    assert api.get(f"/api/contractors/{contractor.pk}").status_code == 200
    assert events_of() == []


@pytest.mark.parametrize("status", ["completed", "cancelled"])
def test_delete_is_allowed_after_assignments_end(api, status):
    contractor = ContractorFactory()
    AssignmentFactory(
        contractor=contractor,
        job=JobFactory(status=status),
        start=at(next_weekday(1), 10, tz=NY),
        status=status,
    )

    response = api.delete(f"/api/contractors/{contractor.pk}")

    assert response.status_code == 204
    assert [e.type for e in events_of()] == ["ScheduleUpdated"]


# --- working hours ----------------------------------------------------------------------------


def test_put_working_hours_replaces_the_week_and_records_schedule_updated(api):
    contractor = ContractorFactory()
    new_hours = [
        {"weekday": 5, "start": "09:00", "end": "13:00"},
        {"weekday": 0, "start": "13:00", "end": "18:00"},
        {"weekday": 0, "start": "07:00", "end": "12:00"},
    ]

    response = api.put(f"/api/contractors/{contractor.pk}/working-hours", new_hours, format="json")

    assert response.status_code == 200
    ordered = [
        {"weekday": 0, "start": "07:00", "end": "12:00"},
        {"weekday": 0, "start": "13:00", "end": "18:00"},
        {"weekday": 5, "start": "09:00", "end": "13:00"},
    ]
    assert response.json() == ordered
    assert hours_of(contractor) == [
        (0, time(7), time(12)),
        (0, time(13), time(18)),
        (5, time(9), time(13)),
    ]
    assert_schedule_updated(
        contractor, previous={"workingHours": DEFAULT_HOURS}, new={"workingHours": ordered}
    )


def test_put_the_same_working_hours_records_nothing(api):
    contractor = ContractorFactory()

    response = api.put(
        f"/api/contractors/{contractor.pk}/working-hours", DEFAULT_HOURS, format="json"
    )

    assert response.status_code == 200
    assert response.json() == DEFAULT_HOURS
    assert events_of() == []


def test_put_no_working_hours_clears_the_week(api):
    contractor = ContractorFactory()

    response = api.put(f"/api/contractors/{contractor.pk}/working-hours", [], format="json")

    assert response.status_code == 200
    assert response.json() == []
    assert hours_of(contractor) == []
    [event] = events_of()
    assert event.payload["newValues"] == {"workingHours": []}


def test_back_to_back_windows_do_not_overlap(api):
    contractor = ContractorFactory()
    hours = [
        {"weekday": 2, "start": "08:00", "end": "12:00"},
        {"weekday": 2, "start": "12:00", "end": "16:00"},
    ]

    response = api.put(f"/api/contractors/{contractor.pk}/working-hours", hours, format="json")

    assert response.status_code == 200
    assert response.json() == hours


@pytest.mark.parametrize(
    ("hours", "field"),
    [
        (
            [
                {"weekday": 0, "start": "08:00", "end": "12:00"},
                {"weekday": 0, "start": "11:59", "end": "13:00"},
            ],
            "workingHours",
        ),
        (
            [
                {"weekday": 3, "start": "08:00", "end": "17:00"},
                {"weekday": 3, "start": "08:00", "end": "17:00"},
            ],
            "workingHours",
        ),
        ([{"weekday": 0, "start": "08:00", "end": "08:00"}], "end"),
        ([{"weekday": 0, "start": "17:00", "end": "08:00"}], "end"),
        ([{"weekday": 7, "start": "08:00", "end": "17:00"}], "weekday"),
        ([{"weekday": -1, "start": "08:00", "end": "17:00"}], "weekday"),
        ([{"weekday": "monday", "start": "08:00", "end": "17:00"}], "weekday"),
        ([{"weekday": 0, "start": "25:00", "end": "26:00"}], "start"),
        ([{"weekday": 0, "start": "08:00", "end": "24:00"}], "end"),
        ([{"weekday": 0, "start": "8am", "end": "17:00"}], "start"),
        ([{"weekday": 0, "end": "17:00"}], "start"),
    ],
)
def test_put_working_hours_rejects_bad_windows_and_keeps_the_old_ones(api, hours, field):
    contractor = ContractorFactory()

    response = api.put(f"/api/contractors/{contractor.pk}/working-hours", hours, format="json")

    assert response.status_code == 400
    body = response.json()
    if field == "workingHours":
        assert list(body) == ["workingHours"]
    else:
        # Per-window errors are keyed by the window's index in the request.
        [errors] = body.values()
        assert field in errors
    assert hours_of(contractor) == [(d, time(8), time(17)) for d in range(5)]
    assert events_of() == []


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("08:00:10", "08:00:50"),  # stored as a 40-second window, shown as 08:00-08:00
        ("08:00", "16:30:30"),  # stored as 16:30:30, shown and announced as 16:30
    ],
)
def test_put_working_hours_with_seconds_is_400_since_hours_are_kept_to_the_minute(api, start, end):
    contractor = ContractorFactory()

    response = api.put(
        f"/api/contractors/{contractor.pk}/working-hours",
        [{"weekday": 0, "start": start, "end": end}],
        format="json",
    )

    assert response.status_code == 400
    assert hours_of(contractor) == [(d, time(8), time(17)) for d in range(5)]
    assert events_of() == []


def test_put_working_hours_accepts_whole_minutes_with_seconds_spelled_out(api):
    contractor = ContractorFactory()

    response = api.put(
        f"/api/contractors/{contractor.pk}/working-hours",
        [{"weekday": 0, "start": "08:00:00", "end": "16:30:00"}],
        format="json",
    )

    assert response.status_code == 200
    assert response.json() == [{"weekday": 0, "start": "08:00", "end": "16:30"}]
    assert hours_of(contractor) == [(0, time(8), time(16, 30))]
    assert [e.type for e in events_of()] == ["ScheduleUpdated"]


def test_put_working_hours_rejects_an_object_instead_of_a_list(api):
    contractor = ContractorFactory()

    response = api.put(
        f"/api/contractors/{contractor.pk}/working-hours",
        {"weekday": 0, "start": "08:00", "end": "17:00"},
        format="json",
    )

    assert response.status_code == 400
    assert events_of() == []


def test_put_working_hours_of_unknown_contractor_is_404(api):
    response = api.put("/api/contractors/999999/working-hours", DEFAULT_HOURS, format="json")

    assert response.status_code == 404


# --- time off ---------------------------------------------------------------------------------


def test_post_time_off_answers_201_and_records_schedule_updated(api):
    contractor = ContractorFactory()
    day = next_weekday(3)
    start, end = at(day, 8, tz=NY), at(day, 17, tz=NY)

    response = api.post(
        f"/api/contractors/{contractor.pk}/time-off",
        {"start": start.isoformat(), "end": end.isoformat(), "reason": "wedding"},
        format="json",
    )

    assert response.status_code == 201
    entry = TimeOff.objects.get()
    expected = {"id": entry.pk, "start": iso(start), "end": iso(end), "reason": "wedding"}
    assert response.json() == expected
    assert (entry.contractor_id, entry.start, entry.end) == (contractor.pk, start, end)
    assert_schedule_updated(contractor, previous={"timeOff": None}, new={"timeOff": expected})
    assert api.get(f"/api/contractors/{contractor.pk}").json()["timeOff"] == [expected]


def test_post_time_off_without_reason_defaults_to_blank(api):
    contractor = ContractorFactory()
    day = next_weekday(3)

    response = api.post(
        f"/api/contractors/{contractor.pk}/time-off",
        {"start": iso(at(day, 13)), "end": iso(at(day, 15))},
        format="json",
    )

    assert response.status_code == 201
    assert response.json()["reason"] == ""


@pytest.mark.parametrize(
    ("start_hour", "end_hour", "field"),
    [(12, 10, "end"), (12, 12, "end"), (None, 12, "start"), (12, None, "end")],
)
def test_post_time_off_rejects_bad_ranges(api, start_hour, end_hour, field):
    contractor = ContractorFactory()
    day = next_weekday(3)
    body = {
        "start": iso(at(day, start_hour)) if start_hour is not None else "not a date",
        "end": iso(at(day, end_hour)) if end_hour is not None else "2026-02-30T10:00:00Z",
    }

    response = api.post(f"/api/contractors/{contractor.pk}/time-off", body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert TimeOff.objects.count() == 0
    assert events_of() == []


def test_delete_time_off_answers_204_and_records_schedule_updated(api):
    contractor = ContractorFactory()
    day = next_weekday(3)
    entry = TimeOffFactory(
        contractor=contractor, start=at(day, 13), end=at(day, 17), reason="vacation"
    )

    response = api.delete(f"/api/contractors/{contractor.pk}/time-off/{entry.pk}")

    assert response.status_code == 204
    assert TimeOff.objects.count() == 0
    assert_schedule_updated(
        contractor,
        previous={
            "timeOff": {
                "id": entry.pk,
                "start": iso(at(day, 13)),
                "end": iso(at(day, 17)),
                "reason": "vacation",
            }
        },
        new={"timeOff": None},
    )
    again = api.delete(f"/api/contractors/{contractor.pk}/time-off/{entry.pk}")
    assert again.status_code == 404
    assert len(events_of()) == 1


def test_delete_time_off_404_for_unknown_or_someone_elses_entry(api):
    contractor, stranger = ContractorFactory(), ContractorFactory()
    day = next_weekday(3)
    theirs = TimeOffFactory(contractor=stranger, start=at(day, 13), end=at(day, 17))

    unknown = api.delete(f"/api/contractors/{contractor.pk}/time-off/999999")
    foreign = api.delete(f"/api/contractors/{contractor.pk}/time-off/{theirs.pk}")

    assert unknown.status_code == 404
    assert unknown.json()["code"] == "not_found"
    assert foreign.status_code == 404
    assert TimeOff.objects.filter(pk=theirs.pk).exists()
    assert events_of() == []


def test_time_off_of_unknown_contractor_is_404(api):
    day = next_weekday(3)

    response = api.post(
        "/api/contractors/999999/time-off",
        {"start": iso(at(day, 13)), "end": iso(at(day, 17))},
        format="json",
    )

    assert response.status_code == 404
    assert TimeOff.objects.count() == 0


# --- regions ----------------------------------------------------------------------------------

NORTH = {"slug": "north", "name": "North", "center": {"lat": 40.9, "lng": -73.9}, "radiusMiles": 25}


def test_regions_are_listed_by_slug_for_everyone_signed_in(contractor_user):
    RegionFactory(slug="south", center_lat=39.95, center_lng=-75.16, radius_miles=30)
    RegionFactory(slug="north")

    response = client_for(contractor_user).get("/api/regions")

    assert response.status_code == 200
    body = response.json()
    assert [r["slug"] for r in body] == ["north", "south"]
    assert set(body[0]) == REGION_FIELDS
    assert body[0]["center"] == {"lat": 40.9, "lng": -73.9}
    assert body[0]["radiusMiles"] == 25
    assert body[0]["name"] == "North"


def test_admin_creates_a_region(admin_user):
    response = client_for(admin_user).post("/api/regions", NORTH, format="json")

    assert response.status_code == 201
    region = Region.objects.get()
    assert response.json() == {"id": region.pk, **NORTH}
    assert (region.center_lat, region.center_lng, region.radius_miles) == (40.9, -73.9, 25)
    assert events_of() == []


def test_dispatcher_may_not_create_a_region(api):
    response = api.post("/api/regions", NORTH, format="json")

    assert response.status_code == 403
    assert Region.objects.count() == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"center": {"lat": 91, "lng": -73.9}}, "center"),
        ({"center": {"lat": 40.9, "lng": -181}}, "center"),
        ({"center": {"lat": 40.9}}, "center"),
        ({"center": "40.9,-73.9"}, "center"),
        ({"radiusMiles": 0}, "radiusMiles"),
        ({"radiusMiles": -5}, "radiusMiles"),
        ({"radiusMiles": "far"}, "radiusMiles"),
        ({"radiusMiles": "NaN"}, "radiusMiles"),
        ({"slug": "north east"}, "slug"),
        ({"slug": "default"}, "slug"),
        ({"name": ""}, "name"),
    ],
)
def test_create_region_rejects_bad_input(admin_user, overrides, field):
    response = client_for(admin_user).post("/api/regions", {**NORTH, **overrides}, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert Region.objects.count() == 0


def test_create_region_with_a_taken_slug_is_409(admin_user):
    RegionFactory(slug="north", name="Old North")

    response = client_for(admin_user).post("/api/regions", NORTH, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "region_exists"
    assert list(Region.objects.values_list("name", flat=True)) == ["Old North"]


# --- authentication ---------------------------------------------------------------------------


def test_token_for_username_and_password(dispatcher):
    response = client_for(None).post(
        "/api/auth/token", {"username": "dispatch", "password": "pw-dispatch"}, format="json"
    )

    assert response.status_code == 200
    assert set(response.json()) == {"token", "expiry"}
    stored = AuthToken.objects.get(user=dispatcher)
    assert response.json()["token"] not in {stored.digest, stored.token_key}  # stored hashed
    client = client_for(None)
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert client.get("/api/contractors").status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "dispatch", "password": "wrong"}, "non_field_errors"),
        ({"username": "nobody", "password": "pw-dispatch"}, "non_field_errors"),
        ({"username": "dispatch"}, "password"),
        ({}, "username"),
    ],
)
def test_token_rejects_bad_credentials_with_400(dispatcher, body, field):
    response = client_for(None).post("/api/auth/token", body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert "token" not in response.json()
    assert AuthToken.objects.count() == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/contractors"),
        ("post", "/api/contractors"),
        ("get", "/api/contractors/1"),
        ("put", "/api/contractors/1/working-hours"),
        ("get", "/api/regions"),
    ],
)
def test_requests_without_credentials_are_401_with_www_authenticate(db, method, path):
    response = getattr(client_for(None), method)(path, {}, format="json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Authentication credentials were not provided."}


@pytest.mark.parametrize("header", ["Token not-a-real-key", "Bearer not-a-real-key", "Token"])
def test_bad_token_is_401(db, header):
    client = client_for(None)
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get("/api/contractors")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_bearer_token_is_accepted(dispatcher):
    client = client_for(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(dispatcher)}")

    assert client.get("/api/contractors").status_code == 200
