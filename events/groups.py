"""Logical group names, as the EventLog records them, and their Channels spelling.

Logical names use `/` (`dispatch/north`, `contractor/42`); Channels accepts only
`[A-Za-z0-9._-]` under 100 characters, so `/` travels as `.`.
"""

import re

_CHANNELS_NAME = re.compile(r"^[A-Za-z0-9._-]{1,99}$")


def dispatch_group(region: str) -> str:
    return f"dispatch/{region}"


def contractor_group(contractor_id: int | str) -> str:
    return f"contractor/{contractor_id}"


def channels_group_name(logical: str) -> str:
    name = logical.replace("/", ".")
    if not _CHANNELS_NAME.match(name):
        raise ValueError(f"not a valid Channels group name: {logical!r}")
    return name
