from rest_framework.pagination import LimitOffsetPagination


class Pagination(LimitOffsetPagination):
    """`{"count", "next", "previous", "results"}`; `?limit=` up to 200, default 50."""

    default_limit = 50
    max_limit = 200
