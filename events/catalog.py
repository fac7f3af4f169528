"""The event catalog: one frozen dataclass per event type, JSON-safe fields only.

Field names are snake_case here and camelCase in the payload (`job_id` -> `jobId`); a field whose
payload key differs says so in its metadata. Each event knows its aggregate and the logical groups
it travels to, so a service cannot record an event to the wrong audience by accident.
`JobUpdated` is an extension to the product's original catalog: edits to open jobs are changes too.
"""

from dataclasses import Field, dataclass, field, fields
from typing import Any, ClassVar

from events.groups import contractor_group, dispatch_group

TimeSlot = dict[str, str]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def payload_key(f: Field) -> str:
    """A dataclass field's key in the payload (events.schemas reads it too)."""
    return f.metadata.get("key", _camel(f.name))


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    type: ClassVar[str]
    version: ClassVar[int] = 1
    aggregate_type: ClassVar[str]

    def aggregate_id(self) -> str:
        raise NotImplementedError

    def groups(self) -> list[str]:
        raise NotImplementedError

    def payload(self) -> dict[str, Any]:
        return {payload_key(f): getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, kw_only=True)
class JobEvent(DomainEvent):
    aggregate_type: ClassVar[str] = "job"
    job_id: int
    region: str

    def aggregate_id(self) -> str:
        return str(self.job_id)

    def groups(self) -> list[str]:
        """The region's dispatchers, and the stream of the contractor the event names, if any."""
        groups = [dispatch_group(self.region)]
        contractor_id = getattr(self, "contractor_id", None)
        if contractor_id is not None:
            groups.append(contractor_group(contractor_id))
        return groups


@dataclass(frozen=True, kw_only=True)
class ContractorEvent(DomainEvent):
    aggregate_type: ClassVar[str] = "contractor"
    contractor_id: int
    region: str

    def aggregate_id(self) -> str:
        return str(self.contractor_id)

    def groups(self) -> list[str]:
        return [dispatch_group(self.region), contractor_group(self.contractor_id)]


@dataclass(frozen=True, kw_only=True)
class JobCreated(JobEvent):
    type: ClassVar[str] = "JobCreated"
    job_type: str = field(metadata={"key": "type"})
    desired_date: str
    duration_minutes: int
    priority: str


@dataclass(frozen=True, kw_only=True)
class JobUpdated(JobEvent):
    type: ClassVar[str] = "JobUpdated"
    updated_fields: list[str]
    previous_values: dict[str, Any]
    new_values: dict[str, Any]
    previous_region: str

    def groups(self) -> list[str]:
        return _unique([dispatch_group(self.region), dispatch_group(self.previous_region)])


@dataclass(frozen=True, kw_only=True)
class JobAssigned(JobEvent):
    type: ClassVar[str] = "JobAssigned"
    contractor_id: int
    assignment_id: int
    scheduled_time_slot: TimeSlot
    score: float | None


@dataclass(frozen=True, kw_only=True)
class JobRescheduled(JobEvent):
    type: ClassVar[str] = "JobRescheduled"
    assignment_id: int
    contractor_id: int
    previous_contractor_id: int
    previous_time_slot: TimeSlot
    scheduled_time_slot: TimeSlot

    def groups(self) -> list[str]:
        return _unique(
            [
                dispatch_group(self.region),
                contractor_group(self.contractor_id),
                contractor_group(self.previous_contractor_id),
            ]
        )


@dataclass(frozen=True, kw_only=True)
class JobCancelled(JobEvent):
    type: ClassVar[str] = "JobCancelled"
    assignment_id: int | None
    contractor_id: int | None
    reason: str


@dataclass(frozen=True, kw_only=True)
class JobStarted(JobEvent):
    """The assigned contractor (or a dispatcher for it) started the work."""

    type: ClassVar[str] = "JobStarted"
    assignment_id: int
    contractor_id: int
    started_at: str


@dataclass(frozen=True, kw_only=True)
class JobCompleted(JobEvent):
    """The work is done; a completion before the slot's end frees the rest of the slot."""

    type: ClassVar[str] = "JobCompleted"
    assignment_id: int
    contractor_id: int
    completed_at: str
    notes: str


@dataclass(frozen=True, kw_only=True)
class ScheduleUpdated(ContractorEvent):
    """Anything that can change a contractor's availability or eligibility changed."""

    type: ClassVar[str] = "ScheduleUpdated"
    updated_fields: list[str]
    previous_values: dict[str, Any]
    new_values: dict[str, Any]

    def groups(self) -> list[str]:
        groups = super().groups()
        previous_region = self.previous_values.get("region")
        if previous_region and previous_region != self.region:
            # A contractor that moved is news for the dispatchers it left, too.
            groups.append(dispatch_group(previous_region))
        return groups


@dataclass(frozen=True, kw_only=True)
class ContractorRated(ContractorEvent):
    """`rating` is null when a rated job moved to another contractor: the rating no longer
    counts for this one (the new contractor gets its own `ContractorRated`)."""

    type: ClassVar[str] = "ContractorRated"
    job_id: int
    rating: int | None
    previous_rating: float | None


@dataclass(frozen=True, kw_only=True)
class RecommendationsUpdated(JobEvent):
    type: ClassVar[str] = "RecommendationsUpdated"
    reason: str
    recommendations: list[dict[str, Any]]


def _unique(groups: list[str]) -> list[str]:
    return list(dict.fromkeys(groups))


EVENT_TYPES: dict[str, type[DomainEvent]] = {
    cls.type: cls
    for cls in (
        JobCreated,
        JobUpdated,
        JobAssigned,
        JobRescheduled,
        JobCancelled,
        JobStarted,
        JobCompleted,
        ScheduleUpdated,
        ContractorRated,
        RecommendationsUpdated,
    )
}
EVENT_TYPE_CHOICES = sorted(EVENT_TYPES)
