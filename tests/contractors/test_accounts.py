from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError
from knox.models import AuthToken
from rest_framework.test import APIClient

from contractors.access import DISPATCHERS_GROUP, Role, roles_of, watched_regions
from contractors.management.commands import create_user
from contractors.services import create_account, delete_contractor, link_user
from contractors.tokens import authenticate_key
from events.errors import Conflict, Invalid, NotFound
from tests.conftest import events_of
from tests.contractors.factories import ContractorFactory, RegionFactory

PASSWORD = "correct-horse-42"

DISPATCHER_CODENAMES = {
    ("contractors", "view_contractor"),
    ("contractors", "add_contractor"),
    ("contractors", "change_contractor"),
    ("contractors", "view_workinghours"),
    ("contractors", "add_workinghours"),
    ("contractors", "change_workinghours"),
    ("contractors", "view_timeoff"),
    ("contractors", "add_timeoff"),
    ("contractors", "change_timeoff"),
    ("contractors", "view_region"),
    ("contractors", "view_rating"),
    ("scheduling", "view_job"),
    ("scheduling", "add_job"),
    ("scheduling", "change_job"),
    ("scheduling", "view_assignment"),
    ("scheduling", "add_assignment"),
    ("scheduling", "change_assignment"),
    ("events", "view_event"),
}


def run_create_user(*args: str) -> str:
    out = StringIO()
    call_command("create_user", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def token_from(output: str) -> str:
    [line] = [line for line in output.splitlines() if line.startswith("token: ")]
    return line.removeprefix("token: ")


# --- create_account ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_dispatcher_account_is_staff_in_the_group_and_watches_its_regions():
    RegionFactory(slug="north")
    RegionFactory(slug="south", center_lat=40.6)
    RegionFactory(slug="east", center_lng=-73.6)

    user, token_key = create_account(
        username="dana", role="dispatcher", password=PASSWORD, regions=["north", "south"]
    )

    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert user.is_staff is True
    assert user.is_superuser is False
    assert roles_of(user) == {Role.DISPATCHER}
    assert sorted(watched_regions(user)) == ["north", "south"]
    assert authenticate_key(token_key) == (user, AuthToken.objects.get(user=user))
    group = Group.objects.get(name=DISPATCHERS_GROUP)
    assert {
        (p.content_type.app_label, p.codename) for p in group.permissions.all()
    } == DISPATCHER_CODENAMES
    assert user.has_perm("scheduling.change_job")
    assert not user.has_perm("scheduling.delete_job")
    assert not user.has_perm("contractors.change_region")
    assert events_of() == []  # no domain data changed


@pytest.mark.django_db
def test_dispatcher_without_regions_watches_all_and_an_existing_group_gets_its_permissions():
    Group.objects.create(name=DISPATCHERS_GROUP)  # e.g. made by hand, without permissions

    user, _ = create_account(username="dana", role="dispatcher", password=PASSWORD)

    assert watched_regions(user) is None
    assert Group.objects.get(name=DISPATCHERS_GROUP).permissions.count() == len(
        DISPATCHER_CODENAMES
    )


@pytest.mark.django_db
def test_admin_account_is_superuser():
    user, token_key = create_account(username="root", role="admin", password=PASSWORD)

    assert (user.is_staff, user.is_superuser) == (True, True)
    assert roles_of(user) == {Role.ADMIN}
    assert authenticate_key(token_key)[0] == user


@pytest.mark.django_db
def test_contractor_account_links_the_contractor_and_records_schedule_updated():
    contractor = ContractorFactory(region="north")

    user, token_key = create_account(
        username="ana", role="contractor", password=PASSWORD, contractor_id=contractor.pk
    )

    contractor.refresh_from_db()
    assert contractor.user == user
    assert roles_of(user) == {Role.CONTRACTOR}
    assert (user.is_staff, user.is_superuser) == (False, False)
    assert authenticate_key(token_key)[0] == user
    [event] = events_of()
    assert event.type == "ScheduleUpdated"
    assert event.aggregate == f"contractor:{contractor.pk}"
    assert event.groups == ["dispatch/north", f"contractor/{contractor.pk}"]
    payload = {k: v for k, v in event.payload.items() if k != "timestamp"}
    assert payload == {
        "contractorId": contractor.pk,
        "region": "north",
        "updatedFields": ["user"],
        "previousValues": {"user": None},
        "newValues": {"user": user.pk},
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"role": "dispatcher", "regions": ["north", "nowhere"]}, Invalid),
        ({"role": "dispatcher", "contractor_id": 1}, Invalid),
        ({"role": "admin", "regions": ["north"]}, Invalid),
        ({"role": "contractor"}, Invalid),
        ({"role": "contractor", "contractor_id": 999_999}, Invalid),
        ({"role": "owner"}, Invalid),
        ({"role": "admin", "password": "short"}, Invalid),
        ({"role": "admin", "password": ""}, Invalid),
        ({"role": "admin", "username": "has space"}, Invalid),
        ({"role": "admin", "username": "taken"}, Conflict),
    ],
)
def test_bad_input_raises_and_writes_nothing(kwargs, error):
    RegionFactory(slug="north")
    User.objects.create_user(username="taken", password=PASSWORD)
    users, tokens, groups = User.objects.count(), AuthToken.objects.count(), Group.objects.count()
    arguments = {"username": "newcomer", "password": PASSWORD, **kwargs}

    with pytest.raises(error):
        create_account(**arguments)

    assert (User.objects.count(), AuthToken.objects.count(), Group.objects.count()) == (
        users,
        tokens,
        groups,
    )
    assert events_of() == []


@pytest.mark.django_db
def test_contractor_already_linked_or_deleted_is_refused_and_writes_nothing():
    linked = ContractorFactory(user=User.objects.create_user(username="first"))
    deleted = ContractorFactory()
    delete_contractor(contractor_id=deleted.pk)
    before = len(events_of())

    with pytest.raises(Conflict):
        create_account(
            username="second", role="contractor", password=PASSWORD, contractor_id=linked.pk
        )
    with pytest.raises(Invalid):
        create_account(
            username="third", role="contractor", password=PASSWORD, contractor_id=deleted.pk
        )

    assert not User.objects.filter(username__in=["second", "third"]).exists()
    assert len(events_of()) == before


# --- link_user --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_link_user_twice_with_the_same_user_changes_nothing():
    contractor = ContractorFactory()
    user = User.objects.create_user(username="ana")
    link_user(contractor_id=contractor.pk, user=user)

    link_user(contractor_id=contractor.pk, user=user)

    assert len(events_of("ScheduleUpdated")) == 1


@pytest.mark.django_db
def test_link_user_refuses_a_user_already_linked_elsewhere_and_unknown_contractors():
    user = User.objects.create_user(username="ana")
    ContractorFactory(user=user)
    other = ContractorFactory()

    with pytest.raises(Conflict):
        link_user(contractor_id=other.pk, user=user)
    with pytest.raises(NotFound):
        link_user(contractor_id=999_999, user=user)

    other.refresh_from_db()
    assert other.user is None
    assert events_of() == []


# --- the command ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_command_prints_a_token_that_authenticates_against_the_api():
    RegionFactory(slug="north")

    output = run_create_user(
        "dana", "--role", "dispatcher", "--regions", "north", "--password", PASSWORD
    )

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_from(output)}")
    response = client.get("/api/jobs")
    assert response.status_code == 200
    assert watched_regions(User.objects.get(username="dana")) == ["north"]


@pytest.mark.django_db
def test_command_creates_contractor_and_admin_logins():
    contractor = ContractorFactory()

    contractor_output = run_create_user(
        "ana", "--role", "contractor", "--contractor", str(contractor.pk), "--password", PASSWORD
    )
    admin_output = run_create_user("root", "--role", "admin", "--password", PASSWORD)

    contractor.refresh_from_db()
    assert authenticate_key(token_from(contractor_output))[0] == contractor.user
    assert authenticate_key(token_from(admin_output))[0].is_superuser


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args",
    [
        ["--role", "dispatcher", "--regions", "north,nowhere", "--password", PASSWORD],
        ["--role", "contractor", "--password", PASSWORD],
        ["--role", "contractor", "--contractor", "999999", "--password", PASSWORD],
        ["--role", "contractor", "--contractor", "abc", "--password", PASSWORD],
        ["--role", "owner", "--password", PASSWORD],
        ["--role", "admin", "--password", "short"],
        ["--role", "admin"],  # no --password and no terminal to prompt on
    ],
)
def test_command_bad_input_is_a_one_line_command_error_and_creates_no_user(args):
    RegionFactory(slug="north")

    with pytest.raises(CommandError) as raised:
        run_create_user("newcomer", *args)

    assert "\n" not in str(raised.value)
    assert not User.objects.filter(username="newcomer").exists()
    assert AuthToken.objects.count() == 0


@pytest.mark.django_db
def test_command_refuses_a_duplicate_username():
    run_create_user("dana", "--role", "admin", "--password", PASSWORD)

    with pytest.raises(CommandError, match="already exists"):
        run_create_user("dana", "--role", "dispatcher", "--password", PASSWORD)

    assert User.objects.get(username="dana").is_superuser


class FakeTerminal(StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.django_db
def test_command_prompts_twice_for_the_password(monkeypatch):
    answers = iter([PASSWORD, PASSWORD])
    monkeypatch.setattr(create_user.getpass, "getpass", lambda prompt: next(answers))

    out = StringIO()
    call_command("create_user", "root", "--role", "admin", stdin=FakeTerminal(), stdout=out)

    assert User.objects.get(username="root").check_password(PASSWORD)
    assert token_from(out.getvalue())


@pytest.mark.django_db
def test_command_refuses_mismatched_prompted_passwords(monkeypatch):
    answers = iter([PASSWORD, PASSWORD + "x"])
    monkeypatch.setattr(create_user.getpass, "getpass", lambda prompt: next(answers))

    with pytest.raises(CommandError, match="do not match"):
        call_command("create_user", "root", "--role", "admin", stdin=FakeTerminal())

    assert not User.objects.filter(username="root").exists()
