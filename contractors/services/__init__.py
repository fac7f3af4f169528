"""Every write to contractors, their schedules, ratings and regions, and to login accounts.

Each service is one use case in one `transaction.atomic` block: lock what it reads-then-writes,
validate, save, `record_event(...)`, return. Domain rules live here, not in serializers or forms,
so the API, the admin and the commands all enforce the same ones.
"""

from contractors.services.accounts import Account, create_account
from contractors.services.common import (
    Location,
    Window,
    touch_schedules,
    validate_windows,
)
from contractors.services.contractors import (
    create_contractor,
    delete_contractor,
    link_user,
    update_contractor,
)
from contractors.services.ratings import (
    RatingResult,
    record_rating,
    refresh_rating_summaries,
)
from contractors.services.regions import create_region, update_region
from contractors.services.schedules import add_time_off, remove_time_off, set_working_hours

__all__ = [
    "Account",
    "Location",
    "RatingResult",
    "Window",
    "add_time_off",
    "create_account",
    "create_contractor",
    "create_region",
    "delete_contractor",
    "link_user",
    "record_rating",
    "refresh_rating_summaries",
    "remove_time_off",
    "set_working_hours",
    "touch_schedules",
    "update_contractor",
    "update_region",
    "validate_windows",
]
