"""Dagster wiring of the email provider events: the landing zone into ``raw.email_events``."""

import dagster as dg

from ingest.config import email_chunk_bytes, settings
from ingest.email_events.load import ingest_email_events
from ingest.progress import report
from ingest.warehouse import open_warehouse


@dg.asset(
    key=["raw", "email_events"],
    group_name="raw",
    kinds={"python", "duckdb", "postgres"},
    description="SendGrid, Postmark and Resend webhook events from the landing zone, one row per event "
                "(deduplicated on provider + event_id); unparseable lines go to quarantine.email_events.",
)
def raw_email_events(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    from crm_warehouse.lock import writer_lock

    cfg = settings()
    with writer_lock(cfg, f"Dagster run {context.run_id[:8]} (e-mail events)", wait=True, progress=context.log.info):
        wh = open_warehouse(cfg)
        try:
            def progress(message: str) -> None:
                context.log.info(message)
                report(message)

            r = ingest_email_events(wh, cfg.email_events_dir, progress=progress, chunk_bytes=email_chunk_bytes())
        finally:
            wh.close()
    context.log.info(
        f"{r.lines_read:,} new landing lines from {r.files_read:,} files: {r.events_new:,} new events, "
        f"{r.duplicates:,} duplicates, {r.rejected:,} quarantined ({r.seconds:.1f} s)")
    return dg.MaterializeResult(metadata={
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
