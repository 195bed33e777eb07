"""Target lists for campaigns: the members of an engagement segment (marts.lead_segments, contact_segments) with the fields
a campaign needs, never anyone unsubscribed or opted out, written as CSV or Parquet.

Left out, each with its reason (counted, never silently): ``no_email`` (nothing to send to),
``unsubscribed`` (an active unsubscribe of the address in email_unsubscribes), ``opted_out``
(email_preferences.marketing_emails false for the app user with that address, or the user the lead
converted to). The e-mail addresses and names come from the staging views (the marts keep no personal data);
the export reads the warehouse read-only, like the report.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import polars as pl

from ingest.config import Settings

SEGMENTS = ("customer_at_risk", "customer", "hot_untouched", "engaged", "nurturing", "dormant")
FORMATS = ("csv", "parquet")
REASONS = {"no_email": "without an e-mail address", "unsubscribed": "unsubscribed (email_unsubscribes)",
           "opted_out": "opted out of marketing e-mail (email_preferences)"}
COLUMNS = ["email", "first_name", "last_name", "company_name", "job_title", "record_type", "record_id", "company_id",
           "segment", "fit", "rep_name", "last_activity_at"]

MEMBERS_SQL = """
WITH members AS (
    SELECT s.record_type, CAST(s.record_id AS VARCHAR) AS record_id, CAST(s.company_id AS VARCHAR) AS company_id,
           s.segment, s.fit, s.rep_name, s.last_activity_at,
           coalesce(l.email, c.email) AS email, coalesce(l.first_name, c.first_name) AS first_name,
           coalesce(l.last_name, c.last_name) AS last_name, coalesce(l.company_name, c.company_name) AS company_name,
           coalesce(l.job_title, c.job_title) AS job_title, l.converted_to_user_id AS user_id
    FROM (SELECT 'lead' AS record_type, lead_id AS record_id, company_id, segment, fit, rep_name, last_activity_at
          FROM marts.lead_segments
          UNION ALL
          SELECT 'contact', contact_id, company_id, segment, CAST(NULL AS VARCHAR), rep_name, last_activity_at
          FROM marts.contact_segments) s
    LEFT JOIN staging.stg_builddesk__leads l ON s.record_type = 'lead' AND l.lead_id = s.record_id
    LEFT JOIN staging.stg_builddesk__contacts c ON s.record_type = 'contact' AND c.contact_id = s.record_id
    WHERE s.segment = ? {company}
),
unsubscribed AS (
    SELECT DISTINCT lower(trim(email)) AS email_key FROM staging.stg_builddesk__email_unsubscribes
    WHERE NOT is_deleted AND coalesce(is_active, true) AND resubscribed_at IS NULL AND email IS NOT NULL
),
opted_out AS (
    SELECT p.user_id, lower(trim(u.email)) AS email_key FROM staging.stg_builddesk__email_preferences p
    LEFT JOIN staging.stg_builddesk__auth_users u ON u.user_id = p.user_id
    WHERE NOT p.is_deleted AND p.marketing_emails = false
)
SELECT members.*,
       CASE WHEN email IS NULL OR trim(email) = '' THEN 'no_email'
            WHEN lower(trim(email)) IN (SELECT email_key FROM unsubscribed) THEN 'unsubscribed'
            WHEN lower(trim(email)) IN (SELECT email_key FROM opted_out WHERE email_key IS NOT NULL)
                 OR user_id IN (SELECT user_id FROM opted_out) THEN 'opted_out'
       END AS left_out_because
FROM members
ORDER BY record_type, record_id
"""


class SegmentExportError(ValueError):
    """The export cannot run as asked (an unknown segment, a bad company id or format): the message says why."""


@dataclasses.dataclass(frozen=True)
class SegmentExport:
    segment: str
    path: Path
    members: int
    written: int
    left_out: dict[str, int]  # reason -> members

    def summary(self) -> str:
        out = f"segment {self.segment}: {self.members:,} members, {self.written:,} written to {self.path}"
        if self.left_out:
            out += "; left out: " + ", ".join(f"{n:,} {REASONS[r]}" for r, n in sorted(self.left_out.items()))
        else:
            out += "; nobody left out"
        return out


def export_segment(cfg: Settings, segment: str, *, company_id: str | None = None, fmt: str = "csv",
                   output: Path | None = None) -> SegmentExport:
    """Write one segment's sendable members and say who was left out and why."""
    from serving.report import _Reader

    if segment not in SEGMENTS:
        raise SegmentExportError(f"unknown segment {segment!r}: one of {', '.join(SEGMENTS)}")
    if fmt not in FORMATS:
        raise SegmentExportError(f"--format must be csv or parquet, not {fmt!r}")
    if company_id and not re.fullmatch(r"[0-9a-fA-F-]{36}", company_id):
        raise SegmentExportError(f"--company-id must be a UUID, not {company_id!r}")
    r = _Reader(cfg)
    try:
        params = [segment] + ([company_id.lower()] if company_id else [])
        df = r.query(MEMBERS_SQL.format(company="AND CAST(s.company_id AS VARCHAR) = ?" if company_id else ""), params)
    finally:
        r.close()
    if df.width == 0 or "left_out_because" not in df.columns:
        df = pl.DataFrame(schema={c: pl.String for c in [*COLUMNS, "left_out_because"]})
    reasons = df["left_out_because"].drop_nulls().value_counts()
    left_out = {str(r): int(n) for r, n in reasons.iter_rows()}
    sendable = df.filter(pl.col("left_out_because").is_null()).select(COLUMNS)
    sendable = sendable.with_columns(pl.col("last_activity_at").cast(pl.String))
    name = f"{segment}-{company_id.lower()}" if company_id else segment
    path = Path(output) if output else cfg.home / "segments" / f"{name}.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "csv":
        sendable.write_csv(tmp)
    else:
        sendable.write_parquet(tmp)
    os.replace(tmp, path)  # a campaign tool never reads half a list
    return SegmentExport(segment, path, df.height, sendable.height, left_out)
