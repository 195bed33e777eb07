"""The as-of days the dbt models can be built for: one Dagster partition per business day of the source,
from its first (the earliest lead, deal, activity or stage move in raw) to the later of today and its
latest (a simulated source's clock can stand ahead of the wall clock: `source advance`).

The days are a dynamic partitions definition because where they start is a fact of the data, not of
the code: the ingest step adds the days raw now covers, the CLI adds the day it builds, the daily
schedule the day that just ended. (A fixed DailyPartitionsDefinition from 2015 showed 4,723 partitions
in the UI, almost all before the source existed.)"""

from __future__ import annotations

import datetime as dt

import dagster as dg

AS_OF_DAYS = dg.DynamicPartitionsDefinition(name="as_of_day")

# the business events whose days the models count (the same tables as int_as_of): their first and latest
BUSINESS_TIMES = """
SELECT min(lo) AS first_ts, max(hi) AS last_ts FROM (
    SELECT min(created_at) AS lo, max(updated_at) AS hi FROM raw.deals WHERE _deleted_at IS NULL
    UNION ALL SELECT min(moved_at), max(moved_at) FROM raw.deal_stage_history WHERE _deleted_at IS NULL
    UNION ALL SELECT min(created_at), max(created_at) FROM raw.leads WHERE _deleted_at IS NULL
    UNION ALL SELECT min(created_at), max(created_at) FROM raw.lead_activities WHERE _deleted_at IS NULL
) AS t
"""


def _utc_day(ts) -> dt.date | None:
    if ts is None:
        return None
    if isinstance(ts, dt.datetime):
        return (ts.astimezone(dt.timezone.utc) if ts.tzinfo else ts).date()
    return ts


def business_days(wh) -> tuple[dt.date | None, dt.date | None]:
    """(first, latest) business day in raw (UTC), None where raw holds no business event yet."""
    from ingest.warehouse import table_columns

    if not all(table_columns(wh, f"raw.{t}") for t in ("deals", "deal_stage_history", "leads", "lead_activities")):
        return None, None
    row = wh.query(BUSINESS_TIMES)
    return _utc_day(row["first_ts"][0]), _utc_day(row["last_ts"][0])


def today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def ensure_as_of_days(instance: dg.DagsterInstance, first: dt.date | None, last: dt.date) -> int:
    """Add the days from ``first`` (or the earliest day already there) to ``last`` that the instance
    does not know yet; returns how many were added. Idempotent. Dagster lists dynamic partitions in the
    order they were added, so days earlier than the known ones (the schedule's first tick added
    yesterday, the ingest then the source's history) are put in order by adding the list again;
    removing a partition key keeps its runs and materializations."""
    known = instance.get_dynamic_partitions(AS_OF_DAYS.name)
    have = set(known)
    starts = [d for d in (first, min((dt.date.fromisoformat(k) for k in known), default=None), last) if d]
    start = min(starts)
    days = [(start + dt.timedelta(days=i)).isoformat() for i in range((last - start).days + 1)]
    missing = [k for k in days if k not in have]
    if not missing:
        return 0
    if known and min(missing) < max(known):
        for key in known:
            instance.delete_dynamic_partition(AS_OF_DAYS.name, key)
        instance.add_dynamic_partitions(AS_OF_DAYS.name, sorted(have | set(missing)))
    else:
        instance.add_dynamic_partitions(AS_OF_DAYS.name, missing)
    return len(missing)
