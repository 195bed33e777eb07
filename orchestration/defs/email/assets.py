"""Dagster wiring of the email provider events: the landing zone into ``raw.email_events``, one of the
assets of the ingest step (``orchestration.defs.ingest.assets.raw_tables``, which holds the writer lock)."""

import dagster as dg

from ingest.config import Settings, email_chunk_bytes
from ingest.email_events.load import ingest_email_events
from ingest.progress import rate, report
from ingest.warehouse import open_warehouse

EMAIL_EVENTS_KEY = dg.AssetKey(["raw", "email_events"])
EMAIL_EVENTS_SPEC = dg.AssetSpec(
    key=EMAIL_EVENTS_KEY,
    group_name="raw",
    kinds={"python", "duckdb", "postgres"},
    skippable=True,
    description="SendGrid, Postmark and Resend webhook events from the landing zone, one row per event "
                "(deduplicated on provider + event_id); unparseable lines go to quarantine.email_events.",
)


def ingest_landing_zone(context: dg.AssetExecutionContext, cfg: Settings) -> dg.MaterializeResult:
    """The landing zone's new lines, in chunks of CRM_EMAIL_CHUNK_MB (each committed with its offsets)."""
    wh = open_warehouse(cfg)
    try:
        def progress(message: str) -> None:
            context.log.info(message)
            report(message)

        r = ingest_email_events(wh, cfg.email_events_dir, progress=progress, chunk_bytes=email_chunk_bytes())
    finally:
        wh.close()
    done = (f"{r.lines_read:,} new landing lines from {r.files_read:,} files: {r.events_new:,} new events, "
            f"{r.duplicates:,} duplicates, {r.rejected:,} quarantined "
            f"(landing, {r.seconds:.1f} s, {rate(r.lines_read, r.seconds, 'lines')})")
    context.log.info(done)
    report(f"raw/email_events: {done}")
    return dg.MaterializeResult(asset_key=EMAIL_EVENTS_KEY, metadata={
        "batch_id": r.batch_id,
        "target": cfg.warehouse,
        "lines_read": r.lines_read,
        "files_read": r.files_read,
        "events_new": r.events_new,
        "duplicates": r.duplicates,
        "quarantined": r.rejected,
        "new_by_provider_and_type": dg.MetadataValue.json(r.new_by_type),
        "quarantined_by_reason": dg.MetadataValue.json(r.rejected_by_reason),
        "seconds": round(r.seconds, 2),
    })
