"""Columns that changed name between versions of BuildDesk's schema.

``RENAMES[(table, contract column)]`` lists the other names the same fact has in some version, in
the order staging tries them when the contract's own name is absent from raw. Where none is
present either, staging yields null of the contract's type (``dbt_project/macros/source_column.sql``).
"""

from __future__ import annotations

RENAMES: dict[tuple[str, str], tuple[str, ...]] = {
    ("companies", "industry"): ("industry_type",),          # live: enum industry_type
    ("companies", "trial_ends_at"): ("trial_end_date",),
    ("tasks", "title"): ("name",),                           # live: project tasks
    ("pipeline_stages", "probability_weight"): ("probability_percent",),
    ("leads", "status"): ("lead_status",),                   # the two definitions of leads
    ("leads", "lead_status"): ("status",),
}
