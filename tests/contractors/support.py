"""What the contractor and scheduling test modules share: the one event a contractor write
records (ScheduleUpdated, or ContractorRated for a rating)."""

from contractors.models import Contractor
from events.models import Event
from tests.conftest import assert_one_event


def assert_schedule_updated(
    contractor: Contractor, *, previous: dict, new: dict, region="default", left=None
) -> Event:
    """The one event recorded: ScheduleUpdated of `contractor`, naming the fields of `new` as
    updated, to `region`'s dispatchers, the contractor's stream and those of the region it
    `left`."""
    return assert_one_event(
        "ScheduleUpdated",
        aggregate=f"contractor:{contractor.pk}",
        groups=[
            f"dispatch/{region}",
            f"contractor/{contractor.pk}",
            *([f"dispatch/{left}"] if left else []),
        ],
        payload={
            "contractorId": contractor.pk,
            "region": region,
            "updatedFields": list(new),
            "previousValues": previous,
            "newValues": new,
        },
    )


def assert_contractor_rated(contractor: Contractor, job, rating: int, previous, region="default"):
    """The one event recorded: ContractorRated of `contractor` for `job`, with the average
    `previous` to this rating, to `region`'s dispatchers and the contractor's stream."""
    assert_one_event(
        "ContractorRated",
        aggregate=f"contractor:{contractor.pk}",
        groups=[f"dispatch/{region}", f"contractor/{contractor.pk}"],
        payload={
            "contractorId": contractor.pk,
            "jobId": job.pk,
            "rating": rating,
            "previousRating": previous,
            "region": region,
        },
    )
