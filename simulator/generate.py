"""Assemble a whole history: every operational table as a frame, plus the webhook landing lines."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import polars as pl

from simulator import email, history
from simulator.scales import Scale
from simulator.vec import US_PER_DAY

STREAMS = ["tenants", "pipelines", "leads", "activities", "requests", "contacts", "deals", "deal_acts",
           "opps", "crm_acts", "tasks", "quotas", "campaigns", "sends", "fates", "app_email",
           "bodies", "deliveries"]


@dataclass
class History:
    tables: dict[str, pl.DataFrame]
    landing: pl.DataFrame
    timings: dict[str, float] = field(default_factory=dict)


# Tiers above this many leads are generated and loaded in chunks of whole tenants, so memory
# stays that of one chunk (a medium-sized history, about 4.5 GB at its peak) whatever the tier.
LEADS_PER_CHUNK = 100_000


def chunk_count(scale: Scale) -> int:
    return max(1, min(scale.tenants, -(-scale.leads // LEADS_PER_CHUNK)))


def build(scale: Scale, seed: int, end_us: int, history_days: int, leads_variant: str) -> History:
    """The whole history in memory (tiers of one chunk: tiny, small, medium)."""
    parts = list(build_chunks(scale, seed, end_us, history_days, leads_variant))
    if len(parts) == 1:
        return parts[0]
    tables = {k: pl.concat([p.tables[k] for p in parts if k in p.tables], how="vertical_relaxed")
              for k in {k for p in parts for k in p.tables}}
    return History(tables=tables, landing=pl.concat([p.landing for p in parts]), timings=parts[0].timings)


def build_chunks(scale: Scale, seed: int, end_us: int, history_days: int, leads_variant: str) -> Iterator[History]:
    """The history as one or more chunks of whole tenants, each a History to load on its own.

    Global tables (companies, people, pipelines, preferences) come with the first chunk; the
    campaigns, whose totals add up every chunk's sends, with the last. One chunk uses the seed's
    streams exactly as they always did, so tiny to medium are unchanged by chunking.
    """
    n_chunks = chunk_count(scale)
    w = history.Window(end_us - history_days * US_PER_DAY, end_us)
    g = history.rngs(seed, STREAMS)
    t0 = time.perf_counter()
    base = history.companies_and_users(g["tenants"], scale, w)
    base |= history.pipelines(g["pipelines"], base["companies"], base["user_profiles"])
    camp = email.campaigns(g["campaigns"], w, None)
    totals: list[pl.DataFrame] = []
    setup_s = time.perf_counter() - t0
    for c in range(n_chunks):
        r = g if n_chunks == 1 else history.rngs(int(np.random.SeedSequence([seed, c + 1]).generate_state(1)[0]), STREAMS)
        companies = base["companies"][c::n_chunks] if n_chunks > 1 else base["companies"]
        part = _chunk(r, scale, n_chunks, c, w, end_us, leads_variant, base, companies, camp)
        totals.append(part.tables.pop("email_campaigns"))
        if c == 0:
            part.tables |= base
            part.timings["setup"] = setup_s
        if c == n_chunks - 1:
            part.tables["email_campaigns"] = _campaign_totals(camp, totals)
        yield part


def _campaign_totals(camp: pl.DataFrame, parts: list[pl.DataFrame]) -> pl.DataFrame:
    if len(parts) == 1:
        return parts[0]
    cols = [c for c in parts[0].columns if c.startswith("total_")]
    summed = (pl.concat([p.select("id", *cols, "last_sent_at") for p in parts])
              .group_by("id").agg(*[pl.col(c).sum().cast(pl.Int32) for c in cols], pl.col("last_sent_at").max()))
    return (camp.join(summed, on="id", how="left")
            .with_columns(pl.col("^total_.*$").fill_null(0), updated_at=pl.max_horizontal("updated_at", "last_sent_at")))


def _chunk(r: dict[str, np.random.Generator], scale: Scale, n_chunks: int, c: int, w: history.Window, end_us: int,
           leads_variant: str, base: dict[str, pl.DataFrame], companies: pl.DataFrame, camp: pl.DataFrame) -> History:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t0
        timings[name] = time.perf_counter() - t0
        t0 = time.perf_counter()

    def share(n: int) -> int:
        return n // n_chunks + (1 if c < n % n_chunks else 0)

    profiles = base["user_profiles"]
    if n_chunks > 1:
        profiles = profiles.filter(pl.col("company_id").is_in(companies["id"].implode()))
    rep_mat, rep_n = history.reps_of(profiles, companies)
    t: dict[str, pl.DataFrame] = {}
    leads = history.leads(r["leads"], share(scale.leads), w, companies, rep_mat, rep_n, leads_variant,
                          email_offset=c * 10 * LEADS_PER_CHUNK)
    acts = history.lead_activities(r["activities"], leads, share(scale.lead_activities), w)
    lap("leads")
    t |= history.lead_requests(r["requests"], leads, acts, w, rep_mat, rep_n)
    standalone = history.contacts(r["contacts"], max(share(scale.deals) // 2, 10), w, companies, rep_mat, rep_n)
    d = history.deals_and_history(r["deals"], share(scale.deals), w, leads, standalone, companies,
                                  base["pipeline_templates"], base["pipeline_stages"], rep_mat, rep_n)
    deals = d["deals"]
    # a contact is created for each lead that became a deal, and the deal points at it
    from_leads = (deals.filter(pl.col("lead_id").is_not_null())
                  .join(leads.select(pl.col("id").alias("lead_id"), "first_name", "last_name", "email", "phone",
                                     "job_title", "company_name", "lead_source"), on="lead_id")
                  .select("lead_id", "company_id", "first_name", "last_name", "email", "phone", "job_title",
                          "company_name", "lead_source", "sales_rep_id", deal_created_at="created_at"))
    converted = history.contacts(r["contacts"], 0, w, companies, rep_mat, rep_n, from_leads=from_leads)
    deal_contact = pl.DataFrame({"lead_id": from_leads["lead_id"], "new_contact": converted["id"]})
    deals = (deals.join(deal_contact, on="lead_id", how="left")
             .with_columns(contact_id=pl.coalesce("contact_id", "new_contact"),
                           primary_contact_id=pl.coalesce("primary_contact_id", "new_contact"))
             .drop("new_contact"))
    contacts = pl.concat([standalone, converted])
    lap("deals")

    # leads' derived columns, as the app and its triggers leave them
    score = history.trigger_score(acts)
    has_deal = deals.filter(pl.col("lead_id").is_not_null()).select(pl.col("lead_id"), deal_at=pl.col("created_at"), won=pl.col("status") == "won", deal_value=pl.col("actual_value"))
    flags = acts.group_by("lead_id").agg(
        requested_demo=(pl.col("activity_type") == "demo_request").any(),
        viewed_pricing=(pl.col("activity_type") == "pricing_viewed").any(),
        downloaded_resource=(pl.col("activity_type") == "resource_downloaded").any(),
        started_signup=(pl.col("activity_type") == "signup_started").any(),
    )
    status_col = "lead_status" if leads_variant == "lead_status" else "status"
    u = pl.Series(r["leads"].random(leads.height))
    age_days = (end_us - leads["created_at"].cast(pl.Int64)) / US_PER_DAY
    leads = (leads.join(score, left_on="id", right_on="lead_id", how="left")
             .join(flags, left_on="id", right_on="lead_id", how="left")
             .join(has_deal, left_on="id", right_on="lead_id", how="left")
             .with_columns(u=u, age=age_days))
    leads = leads.with_columns(
        lead_score=pl.col("score").fill_null(0).cast(pl.Int32),
        **{status_col: pl.when(pl.col("deal_at").is_not_null()).then(pl.lit("converted"))
           .when(pl.col("requested_demo")).then(pl.lit("demo_scheduled"))
           .when((pl.col("age") > 60) & (pl.col("u") < 0.5)).then(pl.lit("lost"))
           .when(pl.col("age") > 14).then(pl.when(pl.col("u") < 0.8).then(pl.lit("contacted")).otherwise(pl.lit("qualified")))
           .when(pl.col("u") < 0.5).then(pl.lit("new")).otherwise(pl.lit("contacted"))},
        conversion_value=pl.when(pl.col("won")).then(pl.col("deal_value")),
        updated_at=pl.max_horizontal("created_at", "last_activity_at", "deal_at"),
    ).drop("score", "deal_at", "won", "deal_value", "u", "age")
    lap("lead state")

    t["leads"] = leads
    t["lead_activities"] = acts
    t["contacts"] = contacts
    t["deals"] = deals
    t["deal_stage_history"] = d["deal_stage_history"]
    t["deal_activities"] = history.deal_activities(r["deal_acts"], deals, w)
    t |= history.opportunities_estimates(r["opps"], max(share(scale.deals) // 2, 5), w, contacts, companies, rep_mat, rep_n)
    t["crm_activities"] = history.crm_activities(r["crm_acts"], leads, t["opportunities"], w, rep_mat, rep_n)
    t["tasks"] = history.tasks(r["tasks"], deals, leads, w)
    t |= history.quotas_and_rules(r["quotas"], w, companies, profiles, deals, end_us)
    t["pipeline_metrics"] = history.operational_pipeline_metrics(deals, base["pipeline_templates"], w)
    lap("sales")

    n_sends = max(int(share(scale.email_events) / 3.0), 50)
    sends = email.sends(r["sends"], n_sends, w, camp, leads, base["auth.users"])
    ev = email.fates(r["fates"], sends, end_us)
    app = email.app_tables(r["app_email"], sends, ev, camp, base["auth.users"], end_us)
    if c > 0:
        app.pop("email_preferences")  # one row per user: the first chunk has them
    t |= app
    lap("email tables")
    bodies = email.provider_bodies(ev, sends, r["bodies"])
    landing = email.landing_lines(email.deliveries(bodies, r["deliveries"]))
    lap("webhook deliveries")
    return History(tables=t, landing=landing, timings=timings)


def strip_private(df: pl.DataFrame) -> pl.DataFrame:
    """Drop the generator's helper columns (prefixed ``_``)."""
    return df.select([c for c in df.columns if not c.startswith("_")])
