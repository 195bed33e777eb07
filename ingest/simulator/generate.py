"""Assemble a whole history: every operational table as a frame, plus the webhook landing lines."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import polars as pl

from ingest.simulator import email, history
from ingest.simulator.scales import Scale
from ingest.simulator.vec import US_PER_DAY

STREAMS = ["tenants", "pipelines", "leads", "activities", "requests", "contacts", "deals", "deal_acts",
           "opps", "crm_acts", "tasks", "quotas", "campaigns", "sends", "fates", "app_email",
           "bodies", "deliveries"]


@dataclass
class History:
    tables: dict[str, pl.DataFrame]
    landing: pl.DataFrame
    timings: dict[str, float] = field(default_factory=dict)


def build(scale: Scale, seed: int, end_us: int, history_days: int, leads_variant: str) -> History:
    w = history.Window(end_us - history_days * US_PER_DAY, end_us)
    r = history.rngs(seed, STREAMS)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t0
        timings[name] = time.perf_counter() - t0
        t0 = time.perf_counter()

    t = history.companies_and_users(r["tenants"], scale, w)
    companies, profiles = t["companies"], t["user_profiles"]
    rep_mat, rep_n = history.reps_of(profiles, companies)
    t |= history.pipelines(r["pipelines"], companies, profiles)
    leads = history.leads(r["leads"], scale.leads, w, companies, rep_mat, rep_n, leads_variant)
    acts = history.lead_activities(r["activities"], leads, scale.lead_activities, w)
    lap("leads")
    t |= history.lead_requests(r["requests"], leads, acts, w, rep_mat, rep_n)
    standalone = history.contacts(r["contacts"], max(scale.deals // 2, 10), w, companies, rep_mat, rep_n)
    d = history.deals_and_history(r["deals"], scale.deals, w, leads, standalone, companies,
                                  t["pipeline_templates"], t["pipeline_stages"], rep_mat, rep_n)
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
    t |= history.opportunities_estimates(r["opps"], max(scale.deals // 2, 5), w, contacts, companies, rep_mat, rep_n)
    t["crm_activities"] = history.crm_activities(r["crm_acts"], leads, t["opportunities"], w, rep_mat, rep_n)
    t["tasks"] = history.tasks(r["tasks"], deals, leads, w)
    t |= history.quotas_and_rules(r["quotas"], w, companies, profiles, deals, end_us)
    t["pipeline_metrics"] = history.operational_pipeline_metrics(deals, t["pipeline_templates"], w)
    lap("sales")

    root_admin = None
    camp = email.campaigns(r["campaigns"], w, root_admin)
    n_sends = max(int(scale.email_events / 3.0), 50)
    sends = email.sends(r["sends"], n_sends, w, camp, leads, t["auth.users"])
    ev = email.fates(r["fates"], sends, end_us)
    t |= email.app_tables(r["app_email"], sends, ev, camp, t["auth.users"], end_us)
    lap("email tables")
    bodies = email.provider_bodies(ev, sends, r["bodies"])
    landing = email.landing_lines(email.deliveries(bodies, r["deliveries"]))
    lap("webhook deliveries")
    return History(tables=t, landing=landing, timings=timings)


def strip_private(df: pl.DataFrame) -> pl.DataFrame:
    """Drop the generator's helper columns (prefixed ``_``)."""
    return df.select([c for c in df.columns if not c.startswith("_")])
