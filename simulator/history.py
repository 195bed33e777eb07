"""Synthetic but realistic BuildDesk CRM history, generated column-wise with NumPy and Polars.

Every function takes a ``numpy.random.Generator`` of its own (spawned from the seed), so the
output is a pure function of (seed, scale, end date, history days, leads variant). Tables come
back as Polars frames whose columns are the operational columns, ready for ``COPY``.

The CRM's behaviour encoded here:
- tenants with admins, sales reps and field staff; one or two pipelines each with ordered stages;
- leads arrive on a weekday/seasonal rhythm from sources that convert at different rates;
  their web activity is front-loaded after the first visit; demo and sales-contact requests
  follow from the activities;
- deals come from leads (most) and from existing contacts; they walk the pipeline stage by
  stage (sometimes one step back), spending an exponential time in each stage, and close won
  or lost (with reasons and competitors) unless the history ends first;
- the derived columns the app stores (``lead_score``, ``deals.weighted_value``,
  ``days_in_pipeline``) are computed as the app would, including their known defects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from simulator.schema import ENUMS, TRIGGER_SCORE_WEIGHTS
from simulator.scales import Scale
from simulator.vec import (
    objs,
    US_PER_DAY,
    after,
    business_times,
    pick,
    ts,
    uuids,
)

FIRST_NAMES = np.array(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard "
    "Susan Joseph Jessica Thomas Sarah Carlos Maria Daniel Nancy Matthew Lisa Anthony Karen Mark "
    "Betty Donald Helen Steven Sandra Paul Donna Andrew Carol Joshua Ruth Kenneth Sharon Kevin "
    "Michelle Brian Laura George Emily Luis Ana Wei Priya Omar Fatima".split(),
    dtype=object,
)
LAST_NAMES = np.array(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill "
    "Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Chen Patel Kim".split(),
    dtype=object,
)
COMPANY_WORDS = np.array(
    "Summit Ridge Keystone Cornerstone Ironwood Granite Pioneer Liberty Heritage Apex Bluewater "
    "Redwood Evergreen Northstar Riverbend Lakeside Oakmont Stonegate Highland Crescent".split(),
    dtype=object,
)
COMPANY_SUFFIX = np.array(
    ["Construction", "Builders", "Contracting", "Homes", "Remodeling", "Roofing", "Electric",
     "Plumbing & Heating", "Concrete", "Development", "General Contractors", "Renovations"],
    dtype=object,
)
CITIES = np.array(
    [("Austin", "TX"), ("Denver", "CO"), ("Phoenix", "AZ"), ("Nashville", "TN"), ("Charlotte", "NC"),
     ("Columbus", "OH"), ("Tampa", "FL"), ("Boise", "ID"), ("Raleigh", "NC"), ("Portland", "OR"),
     ("Atlanta", "GA"), ("Salt Lake City", "UT")],
    dtype=object,
)
JOB_TITLES = np.array(
    ["Owner", "Project Manager", "Estimator", "Operations Manager", "Superintendent", "Office Manager",
     "CFO", "Field Supervisor", "General Manager", "Purchasing Manager"],
    dtype=object,
)
USER_AGENTS = np.array(
    [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    ],
    dtype=object,
)
CITY_NAMES = np.array([c[0] for c in CITIES], dtype=object).astype(str)
PAGES = np.array(
    ["/", "/pricing", "/features/estimating", "/features/scheduling", "/features/job-costing",
     "/blog/construction-bid-checklist", "/resources/estimate-template", "/demo", "/signup", "/case-studies"],
    dtype=object,
)

LEAD_SOURCES = ENUMS[("leads", "lead_source")]
LEAD_SOURCE_SHARE = np.array([0.36, 0.14, 0.15, 0.20, 0.15])
# Relative chance that a lead of each source becomes a deal, and that such a deal is won.
SOURCE_DEAL_RATE = np.array([1.0, 2.2, 0.6, 0.8, 0.4])
SOURCE_WIN_RATE = np.array([0.38, 0.55, 0.25, 0.30, 0.20])

ACTIVITY_TYPES = ENUMS[("lead_activities", "activity_type")]
ACTIVITY_SHARE = np.array([0.58, 0.05, 0.15, 0.06, 0.005, 0.08, 0.025, 0.05])

# name, probability, expected days
STANDARD_STAGES = [("Lead In", 10, 4), ("Qualified", 25, 6), ("Site Visit", 40, 8),
                   ("Proposal Sent", 60, 10), ("Negotiation", 80, 8)]
COMMERCIAL_STAGES = [("Prospecting", 10, 6), ("Bid Invitation", 20, 7), ("Estimating", 35, 12),
                     ("Bid Submitted", 55, 14), ("Negotiation", 75, 10), ("Contract Review", 90, 7)]
STAGE_COLORS = ["#94a3b8", "#60a5fa", "#818cf8", "#a78bfa", "#f59e0b", "#f97316", "#22c55e", "#ef4444"]
LOST_REASONS = np.array(["price", "went_with_competitor", "no_budget", "timing", "no_decision",
                         "scope_mismatch", "unresponsive"], dtype=object)
WON_REASONS = np.array(["best_value", "relationship", "product_fit", "fast_response", "referral_trust"],
                       dtype=object)
COMPETITORS = np.array(["Procore", "Buildertrend", "CoConstruct", "Jobber", "Houzz Pro", "JobNimbus"],
                       dtype=object)


@dataclass(frozen=True)
class Window:
    """The simulated period: [start_us, end_us) in µs since the epoch, UTC."""

    start_us: int
    end_us: int


def rngs(seed: int, names: list[str]) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {name: np.random.default_rng(child) for name, child in zip(names, children)}


def names(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return pick(rng, FIRST_NAMES, n), pick(rng, LAST_NAMES, n)


def phones(rng: np.random.Generator, n: int) -> pl.Series:
    area = pl.Series(rng.integers(201, 989, size=n)).cast(pl.String)
    rest = pl.Series(rng.integers(0, 10_000_000, size=n)).cast(pl.String).str.zfill(7)
    return "+1" + area + rest


def json_objects(**columns) -> pl.Series:
    """One JSON object per row from equally long columns."""
    return pl.DataFrame(columns).select(pl.struct(pl.all()).struct.json_encode()).to_series()


def emails(first: np.ndarray, last: np.ndarray, n_offset: int, domain: pl.Series | str) -> pl.Series:
    idx = pl.Series(np.arange(n_offset, n_offset + len(first))).cast(pl.String)
    local = (pl.Series(objs(first), dtype=pl.String).str.to_lowercase() + "."
             + pl.Series(objs(last), dtype=pl.String).str.to_lowercase() + "." + idx)
    return local + "@" + domain


# --------------------------------------------------------------------------- tenants and people


def companies_and_users(rng: np.random.Generator, scale: Scale, w: Window) -> dict[str, pl.DataFrame]:
    n = scale.tenants
    company_ids = uuids(rng, n)
    city = CITIES[rng.integers(0, len(CITIES), size=n)]
    cname = pick(rng, COMPANY_WORDS, n) + " " + pick(rng, COMPANY_SUFFIX, n)
    cname = np.array([f"{c} {i + 1}" if list(cname).count(c) > 1 else c for i, c in enumerate(cname)], dtype=object)
    created = w.start_us - rng.integers(30, 400, size=n) * US_PER_DAY
    companies = pl.DataFrame({
        "id": company_ids,
        "name": cname.astype(str),
        "industry": pick(rng, ["residential", "commercial", "specialty_trade", "remodeling"], n).astype(str),
        "company_size": pick(rng, ["1-10", "11-50", "51-200"], n, p=[0.5, 0.4, 0.1]).astype(str),
        "city": [c[0] for c in city],
        "state": [c[1] for c in city],
        "phone": phones(rng, n),
        "subscription_tier": pick(rng, ["starter", "professional", "enterprise"], n, p=[0.3, 0.5, 0.2]).astype(str),
        "subscription_status": ["active"] * n,
        "created_at": ts(created),
        "updated_at": ts(created),
    })

    per = scale.reps_per_tenant + 2  # admin, reps…, field supervisor
    m = n * per
    user_company = np.repeat(np.arange(n), per)
    slot = np.tile(np.arange(per), n)
    role = np.where(slot == 0, "admin", np.where(slot == per - 1, "field_supervisor",
                    np.where(rng.random(m) < 0.7, "office_staff", "project_manager"))).astype(object)
    first, last = names(rng, m)
    user_ids = uuids(rng, m)
    domain = pl.Series(cname[user_company].astype(str)).str.to_lowercase().str.replace_all(r"[^a-z0-9]", "") + ".com"
    email = emails(first, last, 0, domain)
    ucreated = created[user_company] + rng.integers(0, 20, size=m) * US_PER_DAY
    users = pl.DataFrame({
        "id": user_ids, "email": email, "phone": phones(rng, m),
        "encrypted_password": pl.Series(["$2a$10$" + "x" * 53] * m),
        "email_confirmed_at": ts(ucreated), "last_sign_in_at": ts(np.minimum(w.end_us - 1, w.start_us + rng.integers(0, w.end_us - w.start_us, size=m))),
        "raw_app_meta_data": pl.Series(['{"provider": "email", "providers": ["email"]}'] * m),
        "raw_user_meta_data": json_objects(first_name=first.astype(str), last_name=last.astype(str)),
        "created_at": ts(ucreated), "updated_at": ts(ucreated),
    })
    profiles = pl.DataFrame({
        "id": user_ids, "company_id": company_ids.gather(user_company), "email": email,
        "first_name": first.astype(str), "last_name": last.astype(str), "phone": users["phone"],
        "role": role.astype(str), "is_active": rng.random(m) > 0.03,
        "hourly_rate": np.round(rng.uniform(28, 95, size=m), 2),
        "created_at": ts(ucreated), "updated_at": ts(ucreated),
    })
    return {"companies": companies, "auth.users": users, "user_profiles": profiles}


def reps_of(profiles: pl.DataFrame, companies: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(rep user ids per company as an object matrix padded with None, rep count per company)."""
    reps = profiles.filter(pl.col("role").is_in(["office_staff", "project_manager", "admin"]))
    order = {cid: i for i, cid in enumerate(companies["id"].to_list())}
    lists: list[list[str]] = [[] for _ in order]
    for cid, uid in zip(reps["company_id"].to_list(), reps["id"].to_list()):
        lists[order[cid]].append(uid)
    width = max(len(x) for x in lists)
    mat = np.full((len(lists), width), None, dtype=object)
    for i, xs in enumerate(lists):
        mat[i, : len(xs)] = xs
    return mat, np.array([len(x) for x in lists])


def pick_rep(rng: np.random.Generator, rep_mat: np.ndarray, rep_n: np.ndarray, company_idx: np.ndarray) -> np.ndarray:
    j = (rng.random(len(company_idx)) * rep_n[company_idx]).astype(np.int64)
    return rep_mat[company_idx, j]


# --------------------------------------------------------------------------- pipelines


def pipelines(rng: np.random.Generator, companies: pl.DataFrame, profiles: pl.DataFrame) -> dict[str, pl.DataFrame]:
    tmpl_rows, stage_rows = [], []
    admins = dict(profiles.filter(pl.col("role") == "admin").select("company_id", "id").iter_rows())
    for cid, created in zip(companies["id"].to_list(), companies["created_at"].to_list()):
        kinds = [("Standard Sales", "standard", STANDARD_STAGES, True)]
        if rng.random() < 0.6:
            kinds.append(("Commercial Projects", "commercial", COMMERCIAL_STAGES, False))
        for name, deal_type, stages, default in kinds:
            tid = uuids(rng, 1)[0]
            tmpl_rows.append({"id": tid, "company_id": cid, "name": name,
                              "description": f"{name} pipeline", "deal_type": deal_type,
                              "is_default": default, "is_active": True, "created_by": admins.get(cid),
                              "created_at": created, "updated_at": created})
            full = [*stages, ("Closed Won", 100, None), ("Closed Lost", 0, None)]
            ids = uuids(rng, len(full))
            k = len(stages)
            for order, ((sname, prob, days), sid) in enumerate(zip(full, ids), start=1):
                stage_rows.append({
                    "id": sid, "template_id": tid, "company_id": cid, "name": sname,
                    "description": None, "stage_order": order, "color_code": STAGE_COLORS[min(order - 1, 7)] if order <= k else STAGE_COLORS[6 if order == k + 1 else 7],
                    "probability_weight": prob, "is_final_stage": order > k,
                    "is_won_stage": order == k + 1, "is_lost_stage": order == k + 2,
                    "auto_tasks": '[]', "required_fields": '["estimated_value"]' if prob >= 60 else '[]',
                    "expected_duration_days": days, "conversion_rate": None,
                    "created_at": created, "updated_at": created,
                })
    return {"pipeline_templates": pl.DataFrame(tmpl_rows), "pipeline_stages": pl.DataFrame(stage_rows)}


# --------------------------------------------------------------------------- leads


def leads(rng: np.random.Generator, n: int, w: Window, companies: pl.DataFrame, rep_mat: np.ndarray,
          rep_n: np.ndarray, variant: str, email_offset: int = 0) -> pl.DataFrame:
    nc = companies.height
    cw = rng.pareto(1.5, size=nc) + 1.0
    company_idx = rng.choice(nc, size=n, p=cw / cw.sum())
    created = np.sort(business_times(rng, n, w.start_us, w.end_us))
    source_idx = rng.choice(len(LEAD_SOURCES), size=n, p=LEAD_SOURCE_SHARE)
    first, last = names(rng, n)
    cname = pick(rng, COMPANY_WORDS, n) + " " + pick(rng, COMPANY_SUFFIX, n)
    domain = pl.Series(cname.astype(str)).str.to_lowercase().str.replace_all(r"[^a-z0-9]", "") + ".example.com"
    utm = np.where(source_idx == 3, "google", np.where(source_idx == 2, "facebook", None)).astype(object)
    df = pl.DataFrame({
        "id": uuids(rng, n),
        "company_id": companies["id"].gather(company_idx),
        "email": emails(first, last, email_offset, domain),
        "first_name": first.astype(str), "last_name": last.astype(str),
        "company_name": cname.astype(str), "phone": phones(rng, n),
        "job_title": pick(rng, JOB_TITLES, n).astype(str),
        "lead_source": np.asarray(LEAD_SOURCES, dtype=object)[source_idx].astype(str),
        "priority": pick(rng, ENUMS[("leads", "priority")], n, p=[0.3, 0.45, 0.2, 0.05]).astype(str),
        "interest_type": pick(rng, ENUMS[("leads", "interest_type")], n, p=[0.3, 0.25, 0.1, 0.35]).astype(str),
        "assigned_to": pl.Series(objs(pick_rep(rng, rep_mat, rep_n, company_idx)), dtype=pl.String),
        "utm_source": pl.Series(objs(utm), dtype=pl.String),
        "utm_medium": pl.Series(objs(np.where(utm != None, "cpc", None)), dtype=pl.String),  # noqa: E711
        "utm_campaign": pl.Series(objs(np.where(utm != None, "spring-build-2026", None)), dtype=pl.String),  # noqa: E711
        "landing_page": pick(rng, PAGES[:6], n).astype(str),
        "referrer": pl.Series(objs(np.where(source_idx == 1, "partner-referral", None)), dtype=pl.String),
        "tags": pl.Series([[]] * n, dtype=pl.List(pl.String)),
        "first_seen_at": ts(created),
        "created_at": ts(created),
        "_company_idx": company_idx,
        "_source_idx": source_idx,
    })
    if variant == "status":
        df = df.with_columns(
            project_type=pl.Series(pick(rng, ENUMS[("leads", "project_type")], n).astype(str)),
            estimated_budget=pl.Series(np.round(rng.lognormal(11.0, 1.0, size=n), -2)),
            project_timeline=pl.Series(pick(rng, ["immediate", "1-3 months", "3-6 months", "6+ months"], n).astype(str)),
            project_city=pl.Series([c[0] for c in CITIES[rng.integers(0, len(CITIES), size=n)]]),
        )
    return df


def lead_activities(rng: np.random.Generator, leads_df: pl.DataFrame, total: int, w: Window,
                    from_us: np.ndarray | None = None) -> pl.DataFrame:
    """About ``total`` activities spread over ``leads_df``; heavy-tailed per lead, front-loaded in time."""
    n = leads_df.height
    if n == 0 or total == 0:
        return pl.DataFrame()
    engagement = rng.gamma(0.8, 1.0, size=n) * (1.0 + 0.8 * (leads_df["_source_idx"].to_numpy() == 1))
    lam = engagement / engagement.sum() * total
    counts = rng.poisson(lam)
    counts[counts == 0] = 1  # every lead was seen at least once (the first page view)
    lead_idx = np.repeat(np.arange(n), counts)
    m = len(lead_idx)
    base = leads_df["created_at"].cast(pl.Int64).to_numpy() if from_us is None else from_us
    t = after(rng, base[lead_idx], 25.0, w.end_us)
    first = np.r_[0, np.cumsum(counts)[:-1]]
    t[first] = np.maximum(base, w.start_us)  # the first activity is the first visit, as created
    atype = pick(rng, ACTIVITY_TYPES, m, p=ACTIVITY_SHARE).astype(object)
    atype[first] = "page_view"
    page = pick(rng, PAGES, m)
    page = np.where(atype == "pricing_viewed", "/pricing", np.where(atype == "demo_request", "/demo",
                    np.where(atype == "signup_started", "/signup", page)))
    ip = (pl.Series(rng.integers(11, 223, size=m)).cast(pl.String) + "." + pl.Series(rng.integers(0, 256, size=m)).cast(pl.String)
          + "." + pl.Series(rng.integers(0, 256, size=m)).cast(pl.String) + "." + pl.Series(rng.integers(1, 255, size=m)).cast(pl.String))
    city_idx = rng.integers(0, len(CITIES), size=m)
    atype_s = pl.Series(atype.astype(str))
    df = pl.DataFrame({
        "id": uuids(rng, m),
        "lead_id": leads_df["id"].gather(lead_idx),
        "activity_type": atype_s,
        "page_url": "https://builddesk.com" + pl.Series(page.astype(str)),
        "ip_address": ip,
        "user_agent": pick(rng, USER_AGENTS, m).astype(str),
        "country": ["US"] * m,
        "city": pl.Series(CITY_NAMES[city_idx]),
        "created_at": ts(t),
    })
    df = df.with_columns(
        activity_data=pl.when(pl.col("activity_type").is_in(["email_open", "email_click"]))
        .then(pl.format('{{"campaign": "nurture-{}"}}', (pl.col("created_at").dt.month())))
        .when(pl.col("activity_type") == "resource_downloaded")
        .then(pl.lit('{"resource": "estimate-template.xlsx"}'))
        .otherwise(pl.lit("{}"))
    )
    return df.sort("created_at")


def trigger_score(activities: pl.DataFrame) -> pl.DataFrame:
    """What update_lead_score() adds up per lead (email spellings that never match included)."""
    weights = pl.DataFrame({"activity_type": list(TRIGGER_SCORE_WEIGHTS),
                            "w": list(TRIGGER_SCORE_WEIGHTS.values())})
    return (activities.select("lead_id", "activity_type", "created_at")
            .join(weights, on="activity_type", how="left")
            .group_by("lead_id")
            .agg(score=pl.col("w").fill_null(0).sum(), last_activity_at=pl.col("created_at").max()))


def lead_requests(rng: np.random.Generator, leads_df: pl.DataFrame, activities: pl.DataFrame, w: Window,
                  rep_mat, rep_n) -> dict[str, pl.DataFrame]:
    """Demo requests follow demo_request activities; sales-contact requests follow interest."""
    demo = (activities.filter(pl.col("activity_type") == "demo_request")
            .group_by("lead_id").agg(pl.col("created_at").min())
            .join(leads_df.select("id", "email", "first_name", "last_name", "company_name", "phone", "_company_idx"),
                  left_on="lead_id", right_on="id").sort("created_at"))
    n = demo.height
    created = demo["created_at"].cast(pl.Int64).to_numpy()
    scheduled = created + rng.integers(1, 8, size=n) * US_PER_DAY + rng.integers(0, 8, size=n) * 3_600_000_000
    u = rng.random(n)
    status = np.where(scheduled >= w.end_us, np.where(u < 0.2, "requested", "scheduled"),
                      np.where(u < 0.62, "completed", np.where(u < 0.8, "cancelled", np.where(u < 0.92, "no_show", "completed"))))
    rep = pick_rep(rng, rep_mat, rep_n, demo["_company_idx"].to_numpy()) if n else np.array([], dtype=object)
    done = status == "completed"
    cancelled = status == "cancelled"
    demos = pl.DataFrame({
        "id": uuids(rng, n), "lead_id": demo["lead_id"], "email": demo["email"],
        "first_name": demo["first_name"], "last_name": demo["last_name"], "company_name": demo["company_name"],
        "phone": demo["phone"],
        "demo_type": pick(rng, ENUMS[("demo_requests", "demo_type")], n, p=[0.2, 0.6, 0.2]).astype(str),
        "preferred_date": ts(scheduled).dt.date(),
        "preferred_time": pick(rng, ["morning", "afternoon", "10:00", "14:00"], n).astype(str),
        "timezone": pick(rng, ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"], n).astype(str),
        "scheduled_at": pl.select(pl.when(pl.Series(status != "requested")).then(ts(scheduled))).to_series(),
        "meeting_url": pl.Series(objs(["https://meet.builddesk.com/d/" + x[:8] for x in uuids(rng, n).to_list()]), dtype=pl.String),
        "status": status.astype(str),
        "completed_at": pl.select(pl.when(pl.Series(done)).then(ts(scheduled + 45 * 60_000_000))).to_series(),
        "cancelled_at": pl.select(pl.when(pl.Series(cancelled)).then(ts(scheduled - 3_600_000_000))).to_series(),
        "cancellation_reason": pl.Series(objs(np.where(cancelled, "scheduling conflict", None)), dtype=pl.String),
        "follow_up_sent": done,
        "assigned_sales_rep": pl.Series(objs(rep), dtype=pl.String),
        "created_at": demo["created_at"],
        "updated_at": ts(np.minimum(np.where(done | cancelled, scheduled + 3_600_000_000, created), w.end_us - 1)),
    })

    want = leads_df.filter(pl.col("interest_type") == "sales_contact")
    m = want.height
    screated = after(rng, want["created_at"].cast(pl.Int64).to_numpy(), 5.0, w.end_us)
    su = rng.random(m)
    sstatus = pick(rng, ENUMS[("sales_contact_requests", "status")], m, p=[0.15, 0.25, 0.2, 0.2, 0.1, 0.1]).astype(str)
    contacted = ts(np.minimum(screated + (su * 2 * US_PER_DAY).astype(np.int64), w.end_us - 1))
    sales = pl.DataFrame({
        "id": uuids(rng, m), "lead_id": want["id"], "email": want["email"], "first_name": want["first_name"],
        "last_name": want["last_name"], "company_name": want["company_name"], "phone": want["phone"],
        "inquiry_type": pick(rng, ENUMS[("sales_contact_requests", "inquiry_type")], m, p=[0.5, 0.2, 0.05, 0.25]).astype(str),
        "message": ["Looking for a quote for our team."] * m,
        "estimated_budget": pick(rng, ["<$5k", "$5k-$20k", "$20k-$50k", "$50k+"], m).astype(str),
        "timeline": pick(rng, ENUMS[("sales_contact_requests", "timeline")], m).astype(str),
        "status": sstatus,
        "contacted_at": pl.select(pl.when(pl.Series(sstatus != "new")).then(contacted)).to_series(),
        "assigned_to": want["assigned_to"],
        "assigned_at": ts(screated),
        "created_at": ts(screated),
        "updated_at": pl.select(pl.when(pl.Series(sstatus != "new")).then(contacted).otherwise(ts(screated))).to_series(),
    })
    return {"demo_requests": demos, "sales_contact_requests": sales}


# --------------------------------------------------------------------------- deals


def deal_paths(rng: np.random.Generator, deals: pl.DataFrame, stages: pl.DataFrame, end_us: int) -> pl.DataFrame:
    """Expand each deal into its stage visits and cut them at ``end_us``.

    ``deals`` needs: deal_idx, template_id, created_us, k (open stages), reach (highest open
    stage order reached), back (one step back at ``back_at``), outcome (won/lost/open).
    """
    closed = deals["outcome"] != "open"
    d = deals.with_columns(
        steps=pl.col("reach") + 2 * pl.col("back").cast(pl.Int64) + closed.cast(pl.Int64),
    )
    p = d.select("deal_idx", "template_id", "created_us", "k", "reach", "back", "back_at", "outcome",
                 "steps", s=pl.int_ranges(0, pl.col("steps"))).explode("s")
    last = pl.col("s") == pl.col("steps") - 1
    open_order = (pl.when(~pl.col("back")).then(pl.col("s") + 1)
                  .when(pl.col("s") < pl.col("back_at")).then(pl.col("s") + 1)
                  .when(pl.col("s") == pl.col("back_at")).then(pl.col("back_at") - 1)
                  .otherwise(pl.col("s") - 1))
    p = p.with_columns(
        stage_order=pl.when(last & (pl.col("outcome") == "won")).then(pl.col("k") + 1)
        .when(last & (pl.col("outcome") == "lost")).then(pl.col("k") + 2)
        .otherwise(open_order)
    )
    st = stages.select(pl.col("template_id"), pl.col("stage_order"), stage_id=pl.col("id"),
                       prob=pl.col("probability_weight"), mean_days=pl.col("expected_duration_days"))
    p = p.join(st, on=["template_id", "stage_order"], how="left")
    p = p.sort(["deal_idx", "s"]).with_columns(
        prev_stage_id=pl.col("stage_id").shift(1).over("deal_idx"),
        prev_mean=pl.col("mean_days").shift(1).over("deal_idx"),
        prev_prob=pl.col("prob").shift(1).over("deal_idx"),
    )
    m = p.height
    wait_days = rng.exponential(1.0, size=m) * p["prev_mean"].fill_null(0).to_numpy() * 1.6 + 0.1
    wait_days[p["s"].to_numpy() == 0] = 0.0
    p = p.with_columns(wait_us=pl.Series((wait_days * US_PER_DAY).astype(np.int64)))
    p = p.with_columns(moved_us=pl.col("created_us") + pl.col("wait_us").cum_sum().over("deal_idx"))
    p = p.filter(pl.col("moved_us") < end_us)
    vf = np.where(rng.random(p.height) < 0.15, rng.uniform(0.8, 1.25, size=p.height), 1.0)
    vf[p["s"].to_numpy() == 0] = 1.0
    return p.with_columns(value_factor=pl.Series(vf)).with_columns(
        value_factor=pl.col("value_factor").cum_prod().over("deal_idx")
    )


def deals_and_history(rng: np.random.Generator, n: int, w: Window, leads_df: pl.DataFrame,
                      contacts_df: pl.DataFrame, companies: pl.DataFrame, templates: pl.DataFrame,
                      stages: pl.DataFrame, rep_mat, rep_n) -> dict[str, pl.DataFrame]:
    cid_index = {c: i for i, c in enumerate(companies["id"].to_list())}
    # 80% of deals from leads, chosen by source conversion rate; the rest from contacts
    n_lead = min(int(n * 0.8), leads_df.height)
    src = leads_df["_source_idx"].to_numpy()
    lw = SOURCE_DEAL_RATE[src] * np.clip((w.end_us - leads_df["created_at"].cast(pl.Int64).to_numpy()) / US_PER_DAY, 1, 60)
    lead_pick = np.sort(rng.choice(leads_df.height, size=n_lead, replace=False, p=lw / lw.sum()))
    n_contact = n - n_lead
    contact_pick = rng.integers(0, contacts_df.height, size=n_contact) if contacts_df.height else np.array([], dtype=np.int64)
    lead_rows = leads_df[lead_pick]
    contact_rows = contacts_df[contact_pick]
    lead_ids = pl.concat([lead_rows["id"], pl.Series(objs([None] * n_contact), dtype=pl.String)])
    company = pl.concat([lead_rows["company_id"], contact_rows["company_id"]])
    company_idx = np.array([cid_index[c] for c in company.to_list()])
    source_idx = np.r_[src[lead_pick], rng.choice(len(LEAD_SOURCES), size=n_contact, p=LEAD_SOURCE_SHARE)]
    base = np.r_[lead_rows["created_at"].cast(pl.Int64).to_numpy(), contact_rows["created_at"].cast(pl.Int64).to_numpy()]
    created = after(rng, base + US_PER_DAY, 12.0, w.end_us)
    created = np.maximum(created, w.start_us)
    # the contact of a lead-sourced deal is created with the deal (see contacts_for_deals)
    rep = pl.concat([lead_rows["assigned_to"], pl.Series(objs(pick_rep(rng, rep_mat, rep_n, company_idx[n_lead:])), dtype=pl.String)])

    tmpl = templates.select("id", "company_id", "deal_type")
    t_by_company: dict[str, list[tuple[str, str]]] = {}
    for tid, cid, dt in tmpl.iter_rows():
        t_by_company.setdefault(cid, []).append((tid, dt))
    u = rng.random(n)
    template_id, deal_type = [], []
    for cid, x in zip(company.to_list(), u.tolist()):
        opts = t_by_company[cid]
        tid, dt = opts[1] if len(opts) > 1 and x < 0.3 else opts[0]
        template_id.append(tid)
        deal_type.append(dt if dt == "commercial" else ("residential" if x > 0.75 else "standard"))
    k_by_t = dict(stages.filter(~pl.col("is_final_stage")).group_by("template_id").agg(pl.len()).iter_rows())
    k = np.array([k_by_t[t] for t in template_id])

    win_p = SOURCE_WIN_RATE[source_idx]
    uo = rng.random(n)
    outcome = np.where(uo < 0.08, "open", np.where(rng.random(n) < win_p, "won", "lost"))
    reach = np.where(outcome == "won", k, 1 + (rng.random(n) * k).astype(np.int64))
    back = (rng.random(n) < 0.12) & (reach >= 2)
    back_at = np.where(back, 1 + (rng.random(n) * (reach - 1)).astype(np.int64) + 1, 0)
    back_at = np.minimum(back_at, reach)
    big = np.array([dt in ("commercial",) for dt in deal_type])
    value = np.round(np.where(big, rng.lognormal(12.2, 0.8, size=n), rng.lognormal(10.1, 0.7, size=n)), 2)

    spec = pl.DataFrame({"deal_idx": np.arange(n), "template_id": template_id, "created_us": created,
                         "k": k, "reach": reach, "back": back, "back_at": back_at, "outcome": outcome})
    path = deal_paths(rng, spec, stages, w.end_us)
    deal_ids = uuids(rng, n)
    path = path.with_columns(
        value_after=pl.Series(value).gather(path["deal_idx"]) * pl.col("value_factor"),
    ).with_columns(
        value_after=pl.col("value_after").round(2),
        value_before=pl.col("value_after").round(2).shift(1).over("deal_idx"),
    )
    auto = rng.random(path.height) < 0.05
    history = pl.DataFrame({
        "id": uuids(rng, path.height),
        "deal_id": deal_ids.gather(path["deal_idx"]),
        "from_stage_id": path["prev_stage_id"],
        "to_stage_id": path["stage_id"],
        "moved_by": pl.Series(objs(np.where(auto, None, rep.gather(path["deal_idx"]).to_numpy())), dtype=pl.String),
        "moved_at": ts(path["moved_us"].to_numpy()),
        "notes": pl.Series(objs(np.where(path["s"].to_numpy() == 0, "Deal created", None)), dtype=pl.String),
        "days_in_previous_stage": path.select(pl.when(pl.col("s") > 0).then(pl.col("wait_us") // US_PER_DAY).cast(pl.Int32)).to_series(),
        "auto_moved": auto,
        "value_before": path["value_before"],
        "value_after": path["value_after"],
        "probability_before": path["prev_prob"],
        "probability_after": path["prob"],
    })
    last = path.group_by("deal_idx").agg(pl.all().sort_by("s").last()).sort("deal_idx")
    st_flags = stages.select(pl.col("id").alias("stage_id"), "is_won_stage", "is_lost_stage")
    last = last.join(st_flags, on="stage_id", how="left").sort("deal_idx")
    won = last["is_won_stage"].to_numpy()
    lost = last["is_lost_stage"].to_numpy()
    closed_at = last["moved_us"].to_numpy()
    status = np.where(won, "won", np.where(lost, "lost", np.where(rng.random(n) < 0.05, "on_hold", "active")))
    est = last["value_after"].to_numpy()
    prob = last["prob"].to_numpy()
    prev_prob = last["prev_prob"].fill_null(0).to_numpy()
    stale = rng.random(n) < 0.07  # the app's stored weighted_value lags a stage move
    weighted = np.round(est * np.where(stale, prev_prob, prob) / 100.0, 2)
    actual = np.where(won, np.round(est * rng.uniform(0.88, 1.08, size=n), 2), np.nan)
    comp_pick = rng.integers(0, len(COMPETITORS), size=(n, 2))
    n_comp = rng.integers(0, 3, size=n)
    competitors = [
        "[" + ", ".join(f'"{COMPETITORS[c]}"' for c in row[:nn]) + "]" for row, nn in zip(comp_pick.tolist(), n_comp.tolist())
    ]
    lost_reason = np.where(lost, pick(rng, LOST_REASONS, n), None)
    lost_to = np.where(lost & (lost_reason == "went_with_competitor"), COMPETITORS[comp_pick[:, 0]], None)
    updated = np.maximum(closed_at, created)
    days_in_pipeline = ((np.where(won | lost, closed_at, updated) - created) // US_PER_DAY).astype(np.int64)
    expected_close = created + (rng.uniform(20, 90, size=n) * US_PER_DAY).astype(np.int64)
    contact_ids = pl.Series(objs([None] * n), dtype=pl.String)
    if contacts_df.height:
        contact_ids = pl.concat([pl.Series(objs([None] * n_lead), dtype=pl.String), contact_rows["id"]])
    deals = pl.DataFrame({
        "id": deal_ids, "company_id": company, "lead_id": lead_ids, "contact_id": contact_ids,
        "pipeline_template_id": template_id, "current_stage_id": last["stage_id"],
        "name": (pl.Series(pick(rng, ["Kitchen remodel", "Office fit-out", "Roof replacement", "New build",
                                      "Warehouse expansion", "Bathroom renovation", "Retail build-out",
                                      "Deck and patio", "HVAC retrofit"], n).astype(str))
                 + " #" + pl.Series(np.arange(1, n + 1)).cast(pl.String)),
        "deal_type": deal_type,
        "estimated_value": est, "actual_value": pl.Series(actual).fill_nan(None),
        "weighted_value": weighted, "days_in_pipeline": days_in_pipeline,
        "expected_close_date": ts(expected_close).dt.date(),
        "actual_close_date": pl.select(pl.when(pl.Series(won | lost)).then(ts(closed_at).dt.date())).to_series(),
        "primary_contact_id": contact_ids,
        "account_manager_id": pl.Series(objs(pick_rep(rng, rep_mat, rep_n, company_idx)), dtype=pl.String),
        "sales_rep_id": rep,
        "competitors": competitors,
        "risk_level": pick(rng, ENUMS[("deals", "risk_level")], n, p=[0.35, 0.4, 0.2, 0.05]).astype(str),
        "status": status.astype(str),
        "priority": pick(rng, ENUMS[("deals", "priority")], n, p=[0.2, 0.5, 0.25, 0.05]).astype(str),
        "source": np.asarray(LEAD_SOURCES, dtype=object)[source_idx].astype(str),
        "won_reason": pl.Series(objs(np.where(won, pick(rng, WON_REASONS, n), None)), dtype=pl.String),
        "lost_reason": pl.Series(objs(lost_reason), dtype=pl.String),
        "lost_to_competitor": pl.Series(objs(lost_to), dtype=pl.String),
        "created_by": rep,
        "created_at": ts(created),
        "updated_at": ts(updated),
        "_company_idx": company_idx,
        "_lead_row": np.r_[lead_pick, np.full(n_contact, -1)],
    })
    return {"deals": deals, "deal_stage_history": history}


def contacts(rng: np.random.Generator, n: int, w: Window, companies: pl.DataFrame, rep_mat, rep_n,
             from_leads: pl.DataFrame | None = None) -> pl.DataFrame:
    """Contacts: ``n`` standalone ones plus one per lead in ``from_leads`` (converted leads)."""
    nc = companies.height
    company_idx = rng.integers(0, nc, size=n)
    first, last = names(rng, n)
    created = business_times(rng, n, w.start_us - 180 * US_PER_DAY, w.end_us)
    cname = pick(rng, COMPANY_WORDS, n) + " " + pick(rng, COMPANY_SUFFIX, n)
    city = CITIES[rng.integers(0, len(CITIES), size=n)]
    rep = pick_rep(rng, rep_mat, rep_n, company_idx)
    df = pl.DataFrame({
        "id": uuids(rng, n), "company_id": companies["id"].gather(company_idx),
        "first_name": first.astype(str), "last_name": last.astype(str),
        "email": emails(first, last, 10_000_000, pl.Series(cname.astype(str)).str.to_lowercase().str.replace_all(r"[^a-z0-9]", "") + ".example.net"),
        "phone": phones(rng, n), "job_title": pick(rng, JOB_TITLES, n).astype(str),
        "company_name": cname.astype(str), "city": [c[0] for c in city], "state": [c[1] for c in city],
        "contact_type": pick(rng, ENUMS[("contacts", "contact_type")], n, p=[0.45, 0.25, 0.1, 0.05, 0.1, 0.05]).astype(str),
        "relationship_status": pick(rng, ENUMS[("contacts", "relationship_status")], n, p=[0.7, 0.15, 0.05, 0.1]).astype(str),
        "preferred_contact_method": pick(rng, ENUMS[("contacts", "preferred_contact_method")], n).astype(str),
        "lead_source": pick(rng, LEAD_SOURCES, n).astype(str),
        "assigned_to": pl.Series(objs(rep), dtype=pl.String), "created_by": pl.Series(objs(rep), dtype=pl.String),
        "created_at": ts(created), "updated_at": ts(created),
    })
    if from_leads is not None and from_leads.height:
        m = from_leads.height
        fl = pl.DataFrame({
            "id": uuids(rng, m), "company_id": from_leads["company_id"],
            "first_name": from_leads["first_name"], "last_name": from_leads["last_name"],
            "email": from_leads["email"], "phone": from_leads["phone"], "job_title": from_leads["job_title"],
            "company_name": from_leads["company_name"], "city": pl.Series(objs([None] * m), dtype=pl.String),
            "state": pl.Series(objs([None] * m), dtype=pl.String),
            "contact_type": ["decision_maker"] * m, "relationship_status": ["active"] * m,
            "preferred_contact_method": ["email"] * m, "lead_source": from_leads["lead_source"],
            "assigned_to": from_leads["sales_rep_id"], "created_by": from_leads["sales_rep_id"],
            "created_at": from_leads["deal_created_at"], "updated_at": from_leads["deal_created_at"],
        })
        df = pl.concat([df, fl], how="vertical_relaxed")
    return df.with_columns(**contact_follow_up(df))


def contact_follow_up(df: pl.DataFrame) -> dict[str, pl.Expr]:
    """When an active contact is next due a call, 7-51 days after it was added, and when it was last
    contacted, 0-59 days after: some are touched since their date, some are due. Drawn from each
    contact's UUID, not the random stream, so no other generated value changes."""
    bits = pl.col("id").cast(pl.String).str.slice(0, 8).str.to_integer(base=16)
    day = pl.col("created_at").dt.date()
    return {
        "next_contact_date": pl.when(pl.col("relationship_status") == "active")
        .then(day + pl.duration(days=7 + bits % 45)).otherwise(None),
        "last_contact_date": day + pl.duration(days=(bits // 64) % 60),
    }


def deal_activities(rng: np.random.Generator, deals: pl.DataFrame, w: Window) -> pl.DataFrame:
    n = deals.height
    if n == 0:
        return pl.DataFrame()
    start = deals["created_at"].cast(pl.Int64).to_numpy()
    closed = deals["actual_close_date"].is_not_null().to_numpy()
    stop = np.where(closed, deals["updated_at"].cast(pl.Int64).to_numpy(), w.end_us)
    life_days = np.maximum((stop - start) / US_PER_DAY, 0.5)
    counts = rng.poisson(np.clip(life_days / 5.0, 0.5, 14))
    idx = np.repeat(np.arange(n), counts)
    m = len(idx)
    t = start[idx] + (rng.random(m) * (stop[idx] - start[idx])).astype(np.int64)
    types = ENUMS[("deal_activities", "activity_type")][:6]
    atype = pick(rng, types, m, p=[0.34, 0.26, 0.16, 0.12, 0.08, 0.04]).astype(str)
    done = (t < w.end_us - US_PER_DAY) & (rng.random(m) < 0.9)
    dur = np.where(np.isin(atype, ["call"]), rng.integers(3, 40, size=m),
                   np.where(atype == "meeting", rng.integers(20, 120, size=m), 0))
    rep = deals["sales_rep_id"].gather(idx)
    df = pl.DataFrame({
        "id": uuids(rng, m), "deal_id": deals["id"].gather(idx), "activity_type": atype,
        "subject": pl.Series(atype).str.replace("_", " ").str.to_titlecase() + " with client",
        "outcome": pl.Series(objs(np.where(done, pick(rng, ["positive", "neutral", "no_answer", "follow_up"], m), None)), dtype=pl.String),
        "due_date": ts(t),
        "completed_at": pl.select(pl.when(pl.Series(done)).then(ts(t))).to_series(),
        "duration_minutes": pl.Series(dur).cast(pl.Int32).scatter(np.nonzero(dur == 0)[0], None),
        "assigned_to": rep, "created_by": rep, "contact_id": deals["contact_id"].gather(idx),
        "is_completed": done, "is_automated": rng.random(m) < 0.04,
        "created_at": ts(t - rng.integers(0, 3, size=m) * US_PER_DAY),
        "updated_at": ts(t),
    })
    won = deals.filter(pl.col("status") == "won")
    signed = pl.DataFrame({
        "id": uuids(rng, won.height), "deal_id": won["id"], "activity_type": ["contract_signed"] * won.height,
        "subject": ["Contract signed"] * won.height,
        "outcome": ["positive"] * won.height, "due_date": won["updated_at"], "completed_at": won["updated_at"],
        "duration_minutes": pl.Series([None] * won.height, dtype=pl.Int32),
        "assigned_to": won["sales_rep_id"], "created_by": won["sales_rep_id"], "contact_id": won["contact_id"],
        "is_completed": [True] * won.height, "is_automated": [False] * won.height,
        "created_at": won["updated_at"], "updated_at": won["updated_at"],
    })
    return pl.concat([df, signed.cast(df.schema)])


def opportunities_estimates(rng: np.random.Generator, n: int, w: Window, contacts_df: pl.DataFrame,
                            companies: pl.DataFrame, rep_mat, rep_n) -> dict[str, pl.DataFrame]:
    pickc = rng.integers(0, contacts_df.height, size=n)
    c = contacts_df[pickc]
    cid_index = {x: i for i, x in enumerate(companies["id"].to_list())}
    company_idx = np.array([cid_index[x] for x in c["company_id"].to_list()], dtype=np.int64)
    created = after(rng, np.maximum(c["created_at"].cast(pl.Int64).to_numpy(), w.start_us), 10.0, w.end_us)
    stage = pick(rng, ENUMS[("opportunities", "stage")], n, p=[0.25, 0.2, 0.15, 0.1, 0.15, 0.15]).astype(str)
    prob = pl.Series(stage).replace_strict({"prospecting": 10, "qualified": 30, "proposal": 55, "negotiation": 75, "won": 100, "lost": 0}, return_dtype=pl.Int32)
    closed = np.isin(stage, ["won", "lost"])
    value = np.round(rng.lognormal(10.8, 0.9, size=n), 2)
    close = created + (rng.uniform(10, 60, size=n) * US_PER_DAY).astype(np.int64)
    close = np.minimum(close, w.end_us - 1)
    am = pick_rep(rng, rep_mat, rep_n, company_idx)
    opp = pl.DataFrame({
        "id": uuids(rng, n), "company_id": c["company_id"],
        "name": pl.Series(pick(rng, ["Custom home", "Tenant improvement", "Roof bid", "Parking structure", "Clinic build-out"], n).astype(str)) + " for " + c["company_name"],
        "project_type": pick(rng, ["residential", "commercial", "industrial"], n).astype(str),
        "contact_id": c["id"], "estimated_value": value,
        "actual_value": pl.Series(np.where(stage == "won", value, np.nan)).fill_nan(None),
        "probability_percent": prob, "stage": stage,
        "expected_close_date": ts(close).dt.date(),
        "bid_required": rng.random(n) < 0.4,
        "competitor_names": pl.Series([[COMPETITORS[i]] for i in rng.integers(0, len(COMPETITORS), size=n)], dtype=pl.List(pl.String)),
        "risk_level": pick(rng, ENUMS[("opportunities", "risk_level")], n).astype(str),
        "account_manager": pl.Series(objs(am), dtype=pl.String), "estimator": pl.Series(objs(pick_rep(rng, rep_mat, rep_n, company_idx)), dtype=pl.String),
        "close_date": pl.select(pl.when(pl.Series(closed)).then(ts(close).dt.date())).to_series(),
        "close_reason": pl.Series(objs(np.where(stage == "lost", "price", np.where(stage == "won", "best_value", None))), dtype=pl.String),
        "tags": pl.Series([[]] * n, dtype=pl.List(pl.String)),
        "created_at": ts(created), "updated_at": ts(np.where(closed, close, created)),
    })
    ne = int(n * 1.3)
    eo = rng.integers(0, n, size=ne)
    e_created = np.minimum(opp["created_at"].cast(pl.Int64).to_numpy()[eo] + rng.integers(0, 10, size=ne) * US_PER_DAY, w.end_us - 1)
    est = pl.DataFrame({
        "id": uuids(rng, ne), "company_id": opp["company_id"].gather(eo), "opportunity_id": opp["id"].gather(eo),
        "estimate_number": "EST-" + pl.Series(np.arange(1, ne + 1)).cast(pl.String).str.zfill(6),
        "title": opp["name"].gather(eo),
        "total_amount": np.round(value[eo] * rng.uniform(0.85, 1.15, size=ne), 2),
        "status": pick(rng, ENUMS[("estimates", "status")], ne, p=[0.2, 0.35, 0.25, 0.15, 0.05]).astype(str),
        "valid_until": ts(e_created + 30 * US_PER_DAY).dt.date(),
        "created_by": opp["estimator"].gather(eo),
        "created_at": ts(e_created), "updated_at": ts(e_created),
    })
    return {"opportunities": opp, "estimates": est}


def crm_activities(rng: np.random.Generator, leads_df: pl.DataFrame, opps: pl.DataFrame, w: Window,
                   rep_mat, rep_n) -> pl.DataFrame:
    nl = int(leads_df.height * 0.5)
    li = rng.integers(0, leads_df.height, size=nl)
    no = int(opps.height * 2)
    oi = rng.integers(0, max(opps.height, 1), size=no) if opps.height else np.array([], dtype=np.int64)
    base = np.r_[leads_df["created_at"].cast(pl.Int64).to_numpy()[li], opps["created_at"].cast(pl.Int64).to_numpy()[oi]]
    t = after(rng, np.maximum(base, w.start_us), 12.0, w.end_us)
    m = nl + no
    atype = pick(rng, ENUMS[("crm_activities", "activity_type")], m, p=[0.35, 0.25, 0.12, 0.13, 0.05, 0.1]).astype(str)
    dur = np.where(np.isin(atype, ["call", "meeting", "site_visit"]), rng.integers(5, 90, size=m), None)
    return pl.DataFrame({
        "id": uuids(rng, m), "activity_type": atype, "activity_date": ts(t),
        "description": pl.Series(atype).str.replace("_", " ") + " logged",
        "outcome": pick(rng, ["connected", "left_voicemail", "scheduled_next", "not_interested"], m).astype(str),
        "duration_minutes": pl.Series(objs(dur), dtype=pl.Int32),
        "lead_id": pl.concat([leads_df["id"].gather(li), pl.Series(objs([None] * no), dtype=pl.String)]),
        "opportunity_id": pl.concat([pl.Series(objs([None] * nl), dtype=pl.String), opps["id"].gather(oi)]),
        "created_by": pl.concat([leads_df["assigned_to"].gather(li), opps["account_manager"].gather(oi)]),
        "company_id": pl.concat([leads_df["company_id"].gather(li), opps["company_id"].gather(oi)]),
        "created_at": ts(t), "updated_at": ts(t),
    })


def tasks(rng: np.random.Generator, deals: pl.DataFrame, leads_df: pl.DataFrame, w: Window) -> pl.DataFrame:
    nd, nl = deals.height, leads_df.height // 10
    li = rng.integers(0, leads_df.height, size=nl)
    base = np.r_[deals["created_at"].cast(pl.Int64).to_numpy(), leads_df["created_at"].cast(pl.Int64).to_numpy()[li]]
    t = after(rng, base, 7.0, w.end_us)
    m = nd + nl
    due = t + rng.integers(1, 14, size=m) * US_PER_DAY
    status = np.where(due < w.end_us, pick(rng, ["completed", "cancelled", "open"], m, p=[0.8, 0.05, 0.15]),
                      pick(rng, ["open", "in_progress"], m)).astype(str)
    done = status == "completed"
    return pl.DataFrame({
        "id": uuids(rng, m), "company_id": pl.concat([deals["company_id"], leads_df["company_id"].gather(li)]),
        "title": pick(rng, ["Send proposal", "Follow up call", "Schedule site visit", "Prepare estimate", "Check references"], m).astype(str),
        "status": status, "priority": pick(rng, ENUMS[("tasks", "priority")], m, p=[0.3, 0.45, 0.2, 0.05]).astype(str),
        "due_date": ts(due).dt.date(),
        "completed_at": pl.select(pl.when(pl.Series(done)).then(ts(np.minimum(due, w.end_us - 1)))).to_series(),
        "assigned_to": pl.concat([deals["sales_rep_id"], leads_df["assigned_to"].gather(li)]),
        "created_by": pl.concat([deals["sales_rep_id"], leads_df["assigned_to"].gather(li)]),
        "deal_id": pl.concat([deals["id"], pl.Series(objs([None] * nl), dtype=pl.String)]),
        "lead_id": pl.concat([pl.Series(objs([None] * nd), dtype=pl.String), leads_df["id"].gather(li)]),
        "created_at": ts(t), "updated_at": ts(np.where(done, np.minimum(due, w.end_us - 1), t)),
    })


# --------------------------------------------------------------------------- sales management


def quotas_and_rules(rng: np.random.Generator, w: Window, companies: pl.DataFrame, profiles: pl.DataFrame,
                     deals: pl.DataFrame, through_us: int) -> dict[str, pl.DataFrame]:
    reps = profiles.filter(pl.col("role").is_in(["office_staff", "project_manager"]))
    start = np.datetime64(int(w.start_us), "us").astype("datetime64[M]")
    stop = np.datetime64(int(through_us), "us").astype("datetime64[M]")
    months = np.arange(start, stop + 1)
    quarters = np.unique(months.astype("datetime64[M]").astype(np.int64) // 3 * 3).astype("datetime64[M]")
    avg_won = float(deals.filter(pl.col("status") == "won")["estimated_value"].mean() or 30_000.0)
    rows = []
    for period, starts, length in (("monthly", months, 1), ("quarterly", quarters, 3)):
        for uid, cid in reps.select("id", "company_id").iter_rows():
            for s in starts:
                e = (s + length).astype("datetime64[D]") - np.timedelta64(1, "D")
                deals_target = int(max(1, round(rng.normal(2.0, 0.5) * length)))
                rows.append({
                    "company_id": cid, "user_id": uid, "quota_period": period,
                    "start_date": s.astype("datetime64[D]").astype(object), "end_date": e.astype(object),
                    "revenue_target": round(deals_target * avg_won * rng.uniform(0.8, 1.2), 2),
                    "deals_target": deals_target, "calls_target": 40 * length, "meetings_target": 8 * length,
                    "territory": None, "is_active": True,
                })
    q = pl.DataFrame(rows)
    qs = q["start_date"].cast(pl.Datetime("us")).cast(pl.Int64).to_numpy()
    q = q.with_columns(id=uuids(rng, q.height), created_at=ts(np.maximum(qs - 5 * US_PER_DAY, w.start_us - 30 * US_PER_DAY)))
    q = q.with_columns(updated_at=pl.col("created_at"))

    rules = []
    rep_lists = reps.group_by("company_id").agg(pl.col("id"))
    for cid, ids in rep_lists.iter_rows():
        created = companies.filter(pl.col("id") == cid)["created_at"][0]
        rules.append({"company_id": cid, "name": "Referral leads to senior rep", "priority": 30,
                      "conditions": '{"lead_source": "referral"}', "assign_to_user_id": ids[0],
                      "set_priority": "high", "use_round_robin": False, "round_robin_users": None, "created_at": created})
        rules.append({"company_id": cid, "name": "Hot pricing visitors", "priority": 20,
                      "conditions": '{"viewed_pricing": true, "lead_score_gte": 40}', "assign_to_user_id": None,
                      "set_priority": "hot", "use_round_robin": True, "round_robin_users": "{" + ",".join(ids) + "}", "created_at": created})
        rules.append({"company_id": cid, "name": "Everything else round robin", "priority": 0,
                      "conditions": "{}", "assign_to_user_id": None, "set_priority": None,
                      "use_round_robin": True, "round_robin_users": "{" + ",".join(ids) + "}", "created_at": created})
    r = pl.DataFrame(rules).with_columns(id=uuids(rng, len(rules)), is_active=pl.lit(True)).with_columns(updated_at=pl.col("created_at"))
    return {"sales_quotas": q, "lead_routing_rules": r}


def operational_pipeline_metrics(deals: pl.DataFrame, templates: pl.DataFrame, w: Window) -> pl.DataFrame:
    """What the app's nightly job stored: monthly rows, counts only roughly right (it is not trusted)."""
    d = deals.with_columns(month=pl.col("created_at").dt.truncate("1mo").dt.date(),
                           close_month=pl.col("actual_close_date").dt.truncate("1mo"))
    created = d.group_by("company_id", "pipeline_template_id", "month").agg(deals_created=pl.len())
    closed = (d.filter(pl.col("close_month").is_not_null())
              .group_by("company_id", "pipeline_template_id", month=pl.col("close_month"))
              .agg(deals_won=(pl.col("status") == "won").sum().cast(pl.Int32),
                   deals_lost=(pl.col("status") == "lost").sum().cast(pl.Int32),
                   won_value=pl.col("estimated_value").filter(pl.col("status") == "won").sum(),
                   lost_value=pl.col("estimated_value").filter(pl.col("status") == "lost").sum()))
    m = created.join(closed, on=["company_id", "pipeline_template_id", "month"], how="full", coalesce=True).fill_null(0)
    m = m.filter(pl.col("month") < pl.lit(np.datetime64(int(w.end_us), "us").astype("datetime64[M]").astype(object)))
    m = m.with_columns(
        win_rate=pl.when(pl.col("deals_won") + pl.col("deals_lost") > 0)
        .then((100.0 * pl.col("deals_won") / (pl.col("deals_won") + pl.col("deals_lost"))).round(2)),
        average_deal_size=pl.when(pl.col("deals_won") > 0).then((pl.col("won_value") / pl.col("deals_won")).round(2)),
    )
    end_of_month = (pl.col("month").dt.offset_by("1mo").cast(pl.Datetime("us")))
    return m.select(
        id=pl.lit(None, dtype=pl.String), company_id="company_id", template_id=pl.col("pipeline_template_id"),
        metric_date="month", period_type=pl.lit("monthly"), deals_created=pl.col("deals_created").cast(pl.Int32),
        deals_won="deals_won", deals_lost="deals_lost", won_value="won_value", lost_value="lost_value",
        average_deal_size="average_deal_size", win_rate="win_rate", stages_velocity=pl.lit("{}"),
        created_at=end_of_month,
    ).drop("id").sort("company_id", "template_id", "metric_date")
