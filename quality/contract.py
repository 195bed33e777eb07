"""Expectation suites derived from the source contract, one per raw table (no Great Expectations import).

The contract is the operational schema as ``simulator.schema`` writes it (the seed
analysis of BuildDesk's migrations): its DDL gives each table's key, column types and range
CHECKs, ``ENUMS`` the enumerations and ``FOREIGN_KEYS`` the references. From those, and from a
few naming rules the schema follows (money is DECIMAL, probabilities and rates are percentages,
``*_minutes``/``*_days`` are durations), every table gets the same kinds of expectations:

=============  ======================================================  ==============================
rule kind      expectation (Great Expectations 1.x type)               from
=============  ======================================================  ==============================
primary_key    expect_column_values_to_not_be_null, ..._to_be_unique   PRIMARY KEY
enumeration    expect_column_values_to_be_in_set                       CHECK (c IN (...)) / ENUMS
range          expect_column_values_to_be_between                      CHECK BETWEEN, money >= 0,
                                                                       percentages 0-100, durations
                                                                       and counts >= 0
format         expect_column_values_to_match_regex                     e-mail columns
timestamp      expect_column_values_to_be_between (max: run time)      past-event TIMESTAMPTZ columns
order          unexpected_rows_expectation                             updated_at >= created_at (24 h
                                                                       slack: late commits); moved_at
                                                                       >= the deal's creation
reference      unexpected_rows_expectation                             FOREIGN KEY
=============  ======================================================  ==============================

Each expectation is a plain dict in Great Expectations' serialized form (``type``, ``kwargs``,
``meta``); ``quality.suites`` turns them into GE suites (Data Docs, the record) and
``quality.gate`` compiles the same dicts into SQL that runs on every extracted batch.
UUID columns need no format rule: the source types them ``uuid``, so no other value can arrive.
"""

from __future__ import annotations

import functools

from contract.columns import BETWEEN, COLUMNS, KEYS
from contract.enums import documented
from contract.references import FOREIGN_KEYS
from contract.tables import FRESHNESS_TABLES  # noqa: F401  (re-exported: the Dagster freshness checks)

RUN_TIME = {"$PARAMETER": "run_time"}   # suite parameter: the run's clock (see quality.gate.run_time)
ORDER_SLACK_HOURS = 24
EMAIL_REGEX = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
# TIMESTAMPTZ columns that may lie in the future (plans, schedules, expiries)
FUTURE_OK = {"trial_ends_at", "trial_end_date", "scheduled_at", "scheduled_for", "next_retry_at", "due_date"}


@functools.cache
def contract_tables() -> dict[str, dict]:
    """table (unqualified) → {"key": (...), "columns": {name: TYPE}, "between": {col: (lo, hi)}},
    from the ``contract`` package (both definitions of ``leads``: an expectation on a column a batch
    lacks is skipped)."""
    return {t: {"key": KEYS[t], "columns": {c: typ for c, (typ, _) in cols.items()},
                "between": {c: r for (tt, c), r in BETWEEN.items() if tt == t}}
            for t, cols in COLUMNS.items()}


def _exp(type_: str, rule: str, reason: str, **kwargs) -> dict:
    return {"type": type_, "kwargs": kwargs, "meta": {"rule": rule, "reason": reason}}


def _numeric_range(col: str, typ: str) -> tuple[float | None, float | None, str] | None:
    """Ranges the schema's naming implies for a numeric column without a CHECK."""
    if typ in ("DECIMAL(5,2)",) or col.startswith("probability") or col.endswith(("_percent", "_percentage")):
        return 0, 100, "a percentage must be between 0 and 100"
    if typ.startswith(("DECIMAL", "NUMERIC")):
        if col == "average_cycle_time":
            return 0, None, "a duration cannot be negative"
        return 0, None, "an amount of money cannot be negative"
    if typ in ("INTEGER", "BIGINT") and (col.endswith(("_minutes", "_days", "_count", "_target", "attempts"))
                                         or col.startswith(("days_", "total_", "deals_", "retry_", "max_"))):
        return 0, None, "a duration or count cannot be negative"
    return None


def email_event_expectations() -> list[dict]:
    """``raw.email_events``: the event model every provider's delivery is parsed into
    (``ingest.email_events.model``): ids present, enumerations, e-mail format, and an event that
    happened before its delivery reached the receiver (5 minutes of clock skew between them)."""
    from ingest.email_events.model import BOUNCE_CLASSES, EVENT_TYPES

    out = [_exp("expect_column_values_to_not_be_null", "primary_key", f"{c} is missing", column=c)
           for c in ("provider", "event_id")]
    out.append(_exp("expect_compound_columns_to_be_unique", "primary_key", "(provider, event_id) is duplicated",
                    column_list=["provider", "event_id"]))
    for col, values in (("provider", ("sendgrid", "postmark", "resend")), ("event_type", EVENT_TYPES),
                        ("bounce_class", BOUNCE_CLASSES)):
        out.append(_exp("expect_column_values_to_be_in_set", "enumeration",
                        f"{col} is not one of the event model's values ({', '.join(values)})",
                        column=col, value_set=list(values)))
    out.append(_exp("expect_column_values_to_not_be_null", "timestamp", "occurred_at is missing", column="occurred_at"))
    out.append(_exp("expect_column_values_to_match_regex", "format", "recipient is not an e-mail address",
                    column="recipient", regex=EMAIL_REGEX))
    out.append(_exp("unexpected_rows_expectation", "order", "occurred_at is after the delivery was received",
                    unexpected_rows_query="SELECT * FROM {batch} b WHERE b.occurred_at > b.received_at + "
                                          "INTERVAL '5 minutes'",
                    description="occurred_at<=received_at", columns=["occurred_at", "received_at"],
                    condition="s.occurred_at > s.received_at + INTERVAL '5 minutes'"))
    return out


def expectations(table: str) -> list[dict]:
    """The expectation suite of ``raw.<table>`` as Great Expectations' serialized expectation dicts."""
    if table == "email_events":
        return _named(email_event_expectations())
    t = contract_tables()[table]
    cols: dict[str, str] = t["columns"]
    out = []
    key = list(t["key"])
    for k in key:
        out.append(_exp("expect_column_values_to_not_be_null", "primary_key", f"primary key {k} is missing", column=k))
    if len(key) == 1:
        out.append(_exp("expect_column_values_to_be_unique", "primary_key", f"primary key {key[0]} is duplicated",
                        column=key[0]))
    else:
        out.append(_exp("expect_compound_columns_to_be_unique", "primary_key",
                        f"primary key ({', '.join(key)}) is duplicated", column_list=key))
    for col in cols:
        if values := list(documented(table, col)):
            # documented values: a warning unless the source enforces them (a CHECK or an enum type,
            # read from its catalogue at run time: ``quality.gate.compile_gate``)
            out.append(_exp("expect_column_values_to_be_in_set", "enumeration",
                            f"{col} is not one of the contract's values ({', '.join(values)})",
                            column=col, value_set=values))
    for col, typ in cols.items():
        if col in t["between"]:
            lo, hi = t["between"][col]
            out.append(_exp("expect_column_values_to_be_between", "range", f"{col} must be between {lo} and {hi}",
                            column=col, min_value=lo, max_value=hi))
        elif (r := _numeric_range(col, typ)) is not None:
            lo, hi, why = r
            bounds = {"min_value": lo} | ({"max_value": hi} if hi is not None else {})
            out.append(_exp("expect_column_values_to_be_between", "range", f"{col}: {why}", column=col, **bounds))
    for col, typ in cols.items():
        if typ == "TEXT" and (col == "email" or col.endswith("_email")):
            out.append(_exp("expect_column_values_to_match_regex", "format", f"{col} is not an e-mail address",
                            column=col, regex=EMAIL_REGEX))
    for col, typ in cols.items():
        if typ == "TIMESTAMPTZ" and col not in FUTURE_OK:
            out.append(_exp("expect_column_values_to_be_between", "timestamp", f"{col} is after the run time",
                            column=col, max_value=RUN_TIME))
    if "created_at" in cols and "updated_at" in cols:
        # a transaction stamps updated_at with its start time, so a long one that updates a row created
        # while it ran writes an updated_at before created_at (the late commit): allowed up to the
        # ingest's lookback window, the longest transaction the pipeline assumes
        out.append(_exp("unexpected_rows_expectation", "order",
                        f"updated_at is more than {ORDER_SLACK_HOURS} hours before created_at",
                        unexpected_rows_query="SELECT * FROM {batch} b WHERE b.updated_at < b.created_at - "
                                              f"INTERVAL '{ORDER_SLACK_HOURS} hours'",
                        description="updated_at>=created_at", columns=["updated_at", "created_at"],
                        condition=f"s.updated_at < s.created_at - INTERVAL '{ORDER_SLACK_HOURS} hours'"))
    if table == "deal_stage_history":
        out.append(_exp("unexpected_rows_expectation", "order", "moved_at is before the deal's creation",
                        unexpected_rows_query="SELECT * FROM {batch} b JOIN raw.deals d ON d.id = b.deal_id "
                                              "WHERE b.moved_at < d.created_at",
                        description="moved_at>=deals.created_at", columns=["moved_at", "deal_id"],
                        condition="s.moved_at < (SELECT d.created_at FROM raw.deals d WHERE d.id = s.deal_id)"))
    for child, column, parent, _ in FOREIGN_KEYS:
        if child == table:
            p = parent.rpartition(".")[2]
            out.append(_exp("unexpected_rows_expectation", "reference",
                            f"{column} does not match a live row of raw.{p}",
                            unexpected_rows_query=f"SELECT * FROM {{batch}} b WHERE b.{column} IS NOT NULL AND NOT "
                                                  f"EXISTS (SELECT 1 FROM raw.{p} p WHERE p.id = b.{column} "
                                                  "AND p._deleted_at IS NULL)",
                            description=f"{column} references raw.{p}(id)", columns=[column],
                            condition=f"s.{column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM raw.{p} p "
                                      f"WHERE p.id = s.{column} AND p._deleted_at IS NULL)",
                            parent=p))
    return _named(out)


def _named(out: list[dict]) -> list[dict]:
    for e in out:
        # the gate's row-level SQL for a row-set expectation travels in meta (GE keeps the query)
        for k in ("columns", "condition", "parent"):
            if k in e["kwargs"]:
                e["meta"][k] = e["kwargs"].pop(k)
        e["meta"]["name"] = rule_name(e)
    return out


def rule_name(e: dict) -> str:
    kw = e["kwargs"]
    what = kw.get("column") or "+".join(kw.get("column_list", [])) or kw.get("description", "").split(" ")[0]
    return f"{e['meta']['rule']}:{what}"


def reference_parents(table: str) -> tuple[str, ...]:
    """Raw tables ``table``'s reference rules read: ingested before it (Dagster deps)."""
    parents = [ref.rpartition(".")[2] for child, _, ref, _ in FOREIGN_KEYS if child == table]
    if table == "deal_stage_history":
        parents.append("deals")
    return tuple(dict.fromkeys(p for p in parents if p != table))
