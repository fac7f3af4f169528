"""Instances of any catalog type, built from its dataclass's type hints alone, so a type added
to the catalog is covered by the contract tests with no extra work: `sample(cls)` (one
deterministic instance, for the bus and webhook tests) and `instances(cls)` (a hypothesis
strategy, for the property test of the schemas)."""

import typing
from dataclasses import fields
from datetime import UTC, datetime
from types import NoneType, UnionType
from typing import Any

from django.db import transaction
from hypothesis import strategies as st

from events.catalog import DomainEvent
from events.models import Event
from events.publisher import publish_all
from events.recorder import record_event

TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
)
JSON_SCALARS = st.none() | st.booleans() | st.integers() | TEXT


def _strategy(hint: Any) -> st.SearchStrategy:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return JSON_SCALARS
    if origin in (typing.Union, UnionType):
        return st.one_of([_strategy(arg) for arg in args])
    if origin is dict:
        return st.dictionaries(_strategy(args[0]), _strategy(args[1]), max_size=3)
    if origin is list:
        return st.lists(_strategy(args[0]), max_size=3)
    if hint is str:
        return TEXT
    if hint is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if hint is NoneType:
        return st.none()
    return st.from_type(hint)


def instances(cls: type[DomainEvent]) -> st.SearchStrategy:
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{f.name: _strategy(hints[f.name]) for f in fields(cls)})


def _sample(hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, UnionType):
        return _sample(next(arg for arg in args if arg is not NoneType))
    if origin is dict:
        return {_sample(args[0]): _sample(args[1])}
    if origin is list:
        return [_sample(args[0])]
    return {int: 7, float: 0.5, bool: True, str: "north"}.get(hint, "x")


def sample(cls: type[DomainEvent]) -> DomainEvent:
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: _sample(hints[f.name]) for f in fields(cls)})


def record_samples(types: typing.Iterable[type[DomainEvent]]) -> list[Event]:
    """One recorded event of each type (their payloads are checked like any other),
    published, as the relay does right after commit."""
    with transaction.atomic():
        recorded = [
            record_event(sample(cls), occurred_at=datetime(2026, 1, 5, 14, 0, 0, 123000, UTC))
            for cls in types
        ]
    publish_all()
    for event in recorded:
        event.refresh_from_db()
    return recorded
