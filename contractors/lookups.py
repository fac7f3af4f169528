"""`field__contains_all=[...]`: a JSON list column holds every one of the given strings.

The same answer on both stores, by the route each has: PostgreSQL's jsonb containment (`@>`,
which its indexes can serve), and on the embedded default (SQLite, which has no JSON
containment, so Django's own `__contains` raises NotSupportedError there) a `json_each` anti-join:
no wanted value is missing from the column's values.
"""

import json

from django.db import models


@models.JSONField.register_lookup
class ContainsAll(models.Lookup):
    lookup_name = "contains_all"
    prepare_rhs = False

    def get_prep_lookup(self):
        if isinstance(self.rhs, str) or not all(isinstance(v, str) for v in self.rhs):
            raise TypeError("contains_all takes a list of strings")
        return sorted(set(self.rhs))

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        wanted = json.dumps(self.rhs)
        if connection.vendor == "postgresql":
            return f"{lhs} @> %s::jsonb", [*lhs_params, wanted]
        if connection.vendor == "sqlite":
            return (
                "NOT EXISTS (SELECT 1 FROM json_each(%s) AS wanted WHERE wanted.value NOT IN "
                f"(SELECT have.value FROM json_each({lhs}) AS have))",
                [wanted, *lhs_params],
            )
        raise NotImplementedError(f"contains_all on {connection.vendor}")
