"""One spelling for timestamps in payloads: ISO-8601 in UTC with a `Z`."""

from datetime import UTC, datetime


def iso_utc(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime; SmartScheduler uses timezone-aware datetimes only")
    spec = "seconds" if value.microsecond == 0 else "milliseconds"
    return value.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def time_slot(start: datetime, end: datetime) -> dict[str, str]:
    return {"start": iso_utc(start), "end": iso_utc(end)}
