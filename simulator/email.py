"""BuildDesk's marketing email: campaigns, sends, and what SendGrid, Postmark and Resend send back.

Sends are generated first; each send's fate (delivered, deferred, bounced hard/soft, dropped;
opens, privacy-proxy opens, clicks, unsubscribes, spam complaints) becomes a frame of provider
events. From those events come both the app's own tables (counters on ``email_sends``,
``email_clicks``, ``email_unsubscribes``, campaign totals, all as the app would keep them,
slightly stale) and the webhook deliveries written to the landing zone in each provider's
shape (see ``../shared/email_event_samples``).
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import polars as pl

from simulator.history import USER_AGENTS, Window
from simulator.vec import objs, US_PER_DAY, business_times, hexes, pg_array, pick, ts, uuids

PROVIDERS = ("sendgrid", "postmark", "resend")
PROVIDER_SHARE = (0.5, 0.25, 0.25)
LINKS = np.array(["https://builddesk.com/pricing", "https://builddesk.com/demo",
                  "https://builddesk.com/features/estimating", "https://builddesk.com/blog/bid-checklist",
                  "https://builddesk.com/case-studies/summit-ridge"], dtype=object)

# name, type, trigger, sequence, order, A/B variants (variant, traffic %), open lift of variant B
CAMPAIGN_SPECS = [
    ("Welcome to BuildDesk", "onboarding", "lifecycle", "onboarding", 1, None),
    ("Set up your first estimate", "onboarding", "lifecycle", "onboarding", 2, None),
    ("Invite your crew", "onboarding", "lifecycle", "onboarding", 3, None),
    ("Trial day 3: scheduling", "trial_nurture", "behavioral", "trial_nurture", 1, None),
    ("Trial day 7: job costing", "trial_nurture", "behavioral", "trial_nurture", 2, [("A", 50), ("B", 50)]),
    ("Trial ending soon", "trial_nurture", "behavioral", "trial_nurture", 3, None),
    ("Spring building season", "promotional", "scheduled", "spring_promo", 1, [("A", 34), ("B", 33), ("C", 33)]),
    ("Year-end pricing", "promotional", "scheduled", "year_end", 1, [("A", 50), ("B", 50)]),
    ("Monthly product update", "promotional", "scheduled", None, None, None),
    ("We miss you", "reengagement", "lifecycle", "winback", 1, None),
    ("Your invoice", "transactional", "behavioral", None, None, None),
    ("Demo follow-up", "trial_nurture", "behavioral", "demo_follow_up", 1, [("A", 50), ("B", 50)]),
]
SENDGRID_EVENT_SHARE_IP = ["168.245.0.", "149.72.0.", "50.31.0."]


def campaigns(rng: np.random.Generator, w: Window, root_admin: str | None) -> pl.DataFrame:
    rows = []
    for name, ctype, trigger, seq, order, variants in CAMPAIGN_SPECS:
        for variant, pct in variants or [(None, None)]:
            rows.append({
                "campaign_name": f"{name} ({variant})" if variant else name,
                "campaign_description": f"{ctype.replace('_', ' ')} email",
                "campaign_type": ctype, "trigger_type": trigger,
                "subject_line": name if variant in (None, "A") else f"{name}: {['', '', 'see what is new', 'a faster way'][ord(variant) - 64]}",
                "preview_text": "BuildDesk for builders", "from_name": "BuildDesk", "from_email": "hello@builddesk.com",
                "template_id": f"tmpl_{ctype}_{order or 0}", "sequence_name": seq, "sequence_order": order,
                "ab_test_enabled": variant is not None, "ab_test_variant": variant,
                "ab_test_traffic_percentage": pct, "is_active": True, "created_by": root_admin,
            })
    df = pl.DataFrame(rows)
    created = w.start_us - rng.integers(5, 60, size=df.height) * US_PER_DAY
    return df.with_columns(id=uuids(rng, df.height), created_at=ts(created), updated_at=ts(created))


def sends(rng: np.random.Generator, n: int, w: Window, camp: pl.DataFrame, leads_df: pl.DataFrame,
          users: pl.DataFrame) -> pl.DataFrame:
    """``n`` sends over the window to leads that existed by then (85%) and to app users."""
    weights = np.where(camp["campaign_type"].to_numpy() == "transactional", 0.4, 1.0)
    pct = camp["ab_test_traffic_percentage"].fill_null(100).to_numpy() / 100.0
    ci = rng.choice(camp.height, size=n, p=(weights * pct) / (weights * pct).sum())
    t = np.sort(business_times(rng, n, w.start_us, w.end_us))
    to_lead = rng.random(n) < 0.85
    lead_created = leads_df["created_at"].cast(pl.Int64).to_numpy()
    order = np.argsort(lead_created, kind="stable")
    avail = np.searchsorted(lead_created[order], t, side="right")
    to_lead &= avail > 0
    li = order[np.minimum((rng.random(n) * np.maximum(avail, 1)).astype(np.int64), len(order) - 1)]
    ui = rng.integers(0, users.height, size=n)
    provider = pick(rng, PROVIDERS, n, p=PROVIDER_SHARE).astype(str)
    return pl.DataFrame({
        "id": uuids(rng, n),
        "campaign_id": camp["id"].gather(ci),
        "user_id": pl.Series(objs(np.where(to_lead, None, users["id"].gather(ui).to_numpy())), dtype=pl.String),
        "recipient_email": pl.Series(objs(np.where(to_lead, leads_df["email"].gather(li).to_numpy(), users["email"].gather(ui).to_numpy())), dtype=pl.String),
        "recipient_name": pl.Series(objs(np.where(to_lead, leads_df["first_name"].gather(li).to_numpy(), None)), dtype=pl.String),
        "subject": camp["subject_line"].gather(ci),
        "from_email": camp["from_email"].gather(ci),
        "email_provider": provider,
        "sent_at": ts(t),
        "_ab_variant": camp["ab_test_variant"].gather(ci),
        "_campaign_name": camp["campaign_name"].gather(ci),
        "_template": camp["template_id"].gather(ci),
    }).with_columns(
        email_provider_id=pl.when(pl.col("email_provider") == "sendgrid")
        .then(pl.Series(_b64ids(rng, n, 15)))
        .otherwise(uuids(rng, n)),
        _sg_filter=pl.lit("filterdrecv-") + hexes(rng, n, 8) + "-" + pl.Series(rng.integers(1, 30, size=n)).cast(pl.String) + "-" + hexes(rng, n, 8) + "-" + pl.Series(rng.integers(1, 99, size=n)).cast(pl.String) + "-0",
    )


def _b64ids(rng: np.random.Generator, n: int, nbytes: int) -> np.ndarray:
    """URL-safe base64 ids of ``nbytes`` random bytes each (``nbytes`` a multiple of 3: no padding)."""
    assert nbytes % 3 == 0
    raw = rng.integers(0, 256, size=n * nbytes, dtype=np.uint8).tobytes()
    enc = np.frombuffer(base64.urlsafe_b64encode(raw), dtype=f"S{nbytes // 3 * 4}")
    return enc.astype(str)


def fates(rng: np.random.Generator, s: pl.DataFrame, end_us: int) -> pl.DataFrame:
    """One row per provider event: send index, event kind, time and details (normalized names)."""
    n = s.height
    sent = s["sent_at"].cast(pl.Int64).to_numpy()
    provider = s["email_provider"].to_numpy()
    variant = s["_ab_variant"].fill_null("A").to_numpy()
    u = rng.random(n)
    dropped = (u < 0.004) & (provider == "sendgrid")
    hard = (~dropped) & (u < 0.024)
    soft = (u >= 0.024) & (u < 0.039)
    deferred = (u >= 0.039) & (u < 0.06)
    delivered = ~(dropped | hard | soft)
    parts: list[pl.DataFrame] = []

    def add(mask: np.ndarray, kind: str, t: np.ndarray, **extra) -> None:
        idx = np.nonzero(mask)[0]
        cols = {"send_idx": idx, "kind": [kind] * len(idx), "t": t[idx]}
        for k, v in extra.items():
            cols[k] = v[idx] if isinstance(v, np.ndarray) else [v] * len(idx)
        parts.append(pl.DataFrame(cols))

    sec = 1_000_000
    add(np.ones(n, dtype=bool), "processed", sent + rng.integers(0, 2 * sec, size=n))
    add(deferred, "deferred", sent + rng.integers(30, 600, size=n) * sec)
    dtime = sent + np.where(deferred, rng.integers(900, 7200, size=n), rng.integers(2, 40, size=n)) * sec
    add(delivered, "delivered", dtime)
    add(dropped, "dropped", sent + rng.integers(1, 5, size=n) * sec)
    add(hard, "bounce", sent + rng.integers(2, 60, size=n) * sec, bounce_class="hard")
    add(soft, "bounce", sent + rng.integers(60, 3600, size=n) * sec, bounce_class="soft")

    # opens: variant B/C lift the open rate; Apple Mail privacy proxy opens come right after delivery
    p_open = 0.38 + np.where(variant == "B", 0.05, np.where(variant == "C", -0.02, 0.0))
    opener = delivered & (rng.random(n) < p_open)
    machine_only = delivered & ~opener & (rng.random(n) < 0.12)
    machine = (opener & (rng.random(n) < 0.22)) | machine_only
    add(machine, "open", dtime + rng.integers(1, 120, size=n) * sec, machine=True)
    n_opens = np.where(opener, rng.geometric(0.55, size=n), 0)
    oi = np.repeat(np.arange(n), n_opens)
    open_t = dtime[oi] + (rng.exponential(0.8, size=len(oi)) * US_PER_DAY).astype(np.int64)
    parts.append(pl.DataFrame({"send_idx": oi, "kind": ["open"] * len(oi), "t": open_t, "machine": [False] * len(oi)}))
    clicker = opener & (rng.random(n) < 0.24)
    n_clicks = np.where(clicker, rng.geometric(0.6, size=n), 0)
    ci = np.repeat(np.arange(n), n_clicks)
    click_t = dtime[ci] + (rng.exponential(0.9, size=len(ci)) * US_PER_DAY).astype(np.int64) + 30 * sec
    parts.append(pl.DataFrame({"send_idx": ci, "kind": ["click"] * len(ci), "t": click_t,
                               "url": pick(rng, LINKS, len(ci)).astype(str)}))
    unsub = delivered & (rng.random(n) < 0.012)
    add(unsub, "unsubscribe", dtime + (rng.exponential(1.5, size=n) * US_PER_DAY).astype(np.int64))
    spam = delivered & ~unsub & (rng.random(n) < 0.0012)
    add(spam, "spam_report", dtime + (rng.exponential(1.0, size=n) * US_PER_DAY).astype(np.int64))

    ev = pl.concat(parts, how="diagonal_relaxed")
    ev = ev.filter(pl.col("t") < end_us).with_columns(
        machine=pl.col("machine").fill_null(False),
    ).sort("t")
    m = ev.height
    ip = (pl.Series(pick(rng, SENDGRID_EVENT_SHARE_IP, m).astype(str)) + pl.Series(rng.integers(1, 255, size=m)).cast(pl.String))
    return ev.with_columns(
        useragent=pl.Series(pick(rng, USER_AGENTS, m).astype(str)),
        ip=ip,
        event_uid=pl.Series(_b64ids(rng, m, 18)),
        pm_id=pl.Series(rng.integers(100_000_000, 999_999_999, size=m)),
    )


def app_tables(rng: np.random.Generator, s: pl.DataFrame, ev: pl.DataFrame, camp: pl.DataFrame,
               users: pl.DataFrame, end_us: int) -> dict[str, pl.DataFrame]:
    """The app's own view of email: counters, clicks, unsubscribes, queue, campaign totals."""
    e = ev.with_columns(send_id=s["id"].gather(ev["send_idx"]))
    ts_ = pl.col("t").cast(pl.Datetime("us"))
    agg = e.group_by("send_idx").agg(
        delivered_at=ts_.filter(pl.col("kind") == "delivered").min(),
        first_opened_at=ts_.filter(pl.col("kind") == "open").min(),
        last_opened_at=ts_.filter(pl.col("kind") == "open").max(),
        open_count=(pl.col("kind") == "open").sum().cast(pl.Int32),
        first_clicked_at=ts_.filter(pl.col("kind") == "click").min(),
        last_clicked_at=ts_.filter(pl.col("kind") == "click").max(),
        click_count=(pl.col("kind") == "click").sum().cast(pl.Int32),
        links_clicked=pl.col("url").filter(pl.col("kind") == "click").unique().sort(),
        bounced_at=ts_.filter(pl.col("kind") == "bounce").min(),
        bounce_type=pl.col("bounce_class").filter(pl.col("kind") == "bounce").first(),
        dropped=(pl.col("kind") == "dropped").any(),
        unsubscribed_at=ts_.filter(pl.col("kind") == "unsubscribe").min(),
        complained_at=ts_.filter(pl.col("kind") == "spam_report").min(),
        last_t=pl.col("t").max(),
    )
    out = s.with_row_index("send_idx").with_columns(pl.col("send_idx").cast(pl.Int64)).join(
        agg.with_columns(pl.col("send_idx").cast(pl.Int64)), on="send_idx", how="left")
    # The app misses a few webhook updates: ~3% of sends keep one open fewer than the events show.
    lag = pl.Series(rng.random(out.height) < 0.03)
    out = out.with_columns(
        open_count=pl.when(lag & (pl.col("open_count") > 0)).then(pl.col("open_count") - 1).otherwise(pl.col("open_count")).fill_null(0),
        click_count=pl.col("click_count").fill_null(0),
        status=pl.when(pl.col("dropped")).then(pl.lit("dropped"))
        .when(pl.col("bounced_at").is_not_null()).then(pl.lit("bounced"))
        .when(pl.col("delivered_at").is_not_null()).then(pl.lit("delivered"))
        .otherwise(pl.lit("sent")),
        updated_at=pl.max_horizontal(pl.col("sent_at"), pl.col("last_t").cast(pl.Datetime("us"))),
    )
    email_sends = out.select(
        "id", "campaign_id", "user_id", "recipient_email", "recipient_name", "subject", "from_email",
        "email_provider", "email_provider_id", "status", "sent_at", "delivered_at",
        opened_at=pl.col("first_opened_at"), first_opened_at="first_opened_at", last_opened_at="last_opened_at",
        open_count="open_count", clicked_at=pl.col("first_clicked_at"), first_clicked_at="first_clicked_at",
        last_clicked_at="last_clicked_at", click_count="click_count",
        links_clicked=pl.when(pl.col("links_clicked").list.len() > 0).then(pg_array(pl.col("links_clicked"))),
        unsubscribed_at="unsubscribed_at", bounced_at="bounced_at", bounce_type="bounce_type",
        bounce_reason=pl.when(pl.col("bounce_type") == "hard").then(pl.lit("550 5.1.1 mailbox does not exist"))
        .when(pl.col("bounce_type") == "soft").then(pl.lit("452 4.2.2 mailbox full")),
        complained_at="complained_at",
        send_metadata=pl.format('{{"campaign": "{}", "template": "{}"}}', pl.col("_campaign_name"), pl.col("_template")),
        created_at=pl.col("sent_at") - pl.duration(minutes=2), updated_at="updated_at",
    )
    clicks_ev = e.filter(pl.col("kind") == "click")
    email_clicks = clicks_ev.select(
        id=uuids(rng, clicks_ev.height), email_send_id="send_id", url="url",
        link_text=pl.col("url").str.split("/").list.last(), clicked_at=ts_, ip_address="ip",
        user_agent="useragent", country=pl.lit("US"),
        device_type=pl.when(pl.col("useragent").str.contains("iPhone|Android")).then(pl.lit("mobile")).otherwise(pl.lit("desktop")),
        utm_source=pl.lit("builddesk_email"), utm_medium=pl.lit("email"), created_at=ts_,
    )
    un_ev = e.filter(pl.col("kind").is_in(["unsubscribe", "spam_report"])).unique("send_idx", keep="first")
    k = un_ev.height
    email_of = s.select(pl.col("id").alias("send_id"), "recipient_email", "user_id")
    un = un_ev.join(email_of, on="send_id", how="left")
    email_unsubscribes = un.select(
        id=uuids(rng, k), user_id="user_id", email="recipient_email",
        unsubscribe_type=pl.Series(pick(rng, ["all", "promotional", "newsletter"], k, p=[0.5, 0.35, 0.15]).astype(str)),
        reason=pl.Series(pick(rng, ["too_frequent", "not_relevant", "never_signed_up", "other"], k).astype(str)),
        unsubscribed_from_email_id="send_id",
        unsubscribed_via=pl.when(pl.col("kind") == "spam_report").then(pl.lit("complaint")).otherwise(pl.lit("link")),
        is_active=pl.lit(True), unsubscribed_at=ts_, created_at=ts_, updated_at=ts_,
    )
    email_queue = s.select(
        id=uuids(rng, s.height), campaign_id="campaign_id", user_id="user_id", recipient_email="recipient_email",
        scheduled_for=pl.col("sent_at") - pl.duration(minutes=1), priority=pl.lit(5),
        status=pl.lit("sent"), attempts=pl.lit(1), last_attempt_at="sent_at", email_send_id="id",
        created_at=pl.col("sent_at") - pl.duration(minutes=5), updated_at="sent_at",
    )
    totals = email_sends.group_by("campaign_id").agg(
        total_sent=pl.len().cast(pl.Int32),
        total_delivered=pl.col("delivered_at").is_not_null().sum().cast(pl.Int32),
        total_opened=(pl.col("open_count") > 0).sum().cast(pl.Int32),
        total_clicked=(pl.col("click_count") > 0).sum().cast(pl.Int32),
        total_unsubscribed=pl.col("unsubscribed_at").is_not_null().sum().cast(pl.Int32),
        total_bounced=pl.col("bounced_at").is_not_null().sum().cast(pl.Int32),
        total_complained=pl.col("complained_at").is_not_null().sum().cast(pl.Int32),
        last_sent_at=pl.col("sent_at").max(),
    )
    camp_out = camp.join(totals, left_on="id", right_on="campaign_id", how="left").with_columns(
        pl.col("^total_.*$").fill_null(0),
        updated_at=pl.max_horizontal("updated_at", "last_sent_at"),
    )
    m = users.height
    prefs = pl.DataFrame({
        "user_id": users["id"],
        "marketing_emails": rng.random(m) > 0.15, "product_updates": rng.random(m) > 0.05,
        "newsletter": rng.random(m) > 0.3, "trial_nurture": rng.random(m) > 0.1,
        "email_frequency": pick(rng, ["high", "normal", "low"], m, p=[0.1, 0.75, 0.15]).astype(str),
        "digest_enabled": rng.random(m) < 0.3,
        "digest_frequency": pick(rng, ["daily", "weekly", "monthly"], m, p=[0.2, 0.6, 0.2]).astype(str),
        "created_at": users["created_at"], "updated_at": users["created_at"],
    })
    return {"email_campaigns": camp_out, "email_sends": email_sends, "email_clicks": email_clicks,
            "email_unsubscribes": email_unsubscribes, "email_queue": email_queue, "email_preferences": prefs}


# --------------------------------------------------------------------------- webhook deliveries


def _iso(col: pl.Expr, fmt: str = "%Y-%m-%dT%H:%M:%S%.3fZ") -> pl.Expr:
    return col.cast(pl.Datetime("us")).dt.strftime(fmt)


def provider_bodies(ev: pl.DataFrame, s: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Each event as its provider's JSON object (a string), with the provider and delivery grouping."""
    e = ev.join(
        s.with_row_index("send_idx").select(
            pl.col("send_idx").cast(pl.Int64), "email_provider", "email_provider_id", "recipient_email",
            "subject", "from_email", "_campaign_name", "_template", "_sg_filter", "sent_at"),
        left_on=pl.col("send_idx").cast(pl.Int64), right_on="send_idx", how="left",
    ).with_columns(pl.col("send_idx").cast(pl.Int64))
    out = []
    sg = e.filter(pl.col("email_provider") == "sendgrid")
    if sg.height:
        ms = rng.random(sg.height) < 0.01  # a few single-send events carry millisecond timestamps
        sg = sg.with_columns(
            ts_sec=(pl.col("t") // 1_000_000),
            ms=pl.Series(ms),
            event=pl.col("kind").replace({"spam_report": "spamreport"}),
        )
        base = {
            "email": pl.col("recipient_email"),
            "timestamp": pl.when(pl.col("ms")).then(pl.col("t") // 1000).otherwise(pl.col("ts_sec")),
            "smtp-id": pl.format("<{}@ismtpd0001p1>", pl.col("email_provider_id")),
            "event": pl.col("event"),
            "category": pl.col("_campaign_name"),
            "sg_event_id": pl.col("event_uid"),
            "sg_message_id": pl.format("{}.{}", pl.col("email_provider_id"), pl.col("_sg_filter")),
        }
        extra = {
            "delivered": {"response": pl.lit("250 OK"), "ip": pl.col("ip"), "tls": pl.lit(1)},
            "deferred": {"response": pl.lit("400 try again later"), "attempt": pl.lit("1")},
            "bounce": {"reason": pl.when(pl.col("bounce_class") == "hard").then(pl.lit("550 5.1.1 The email account does not exist"))
                       .otherwise(pl.lit("452 4.2.2 Mailbox full")),
                       "status": pl.when(pl.col("bounce_class") == "hard").then(pl.lit("5.1.1")).otherwise(pl.lit("4.2.2")),
                       "type": pl.when(pl.col("bounce_class") == "hard").then(pl.lit("bounce")).otherwise(pl.lit("blocked")),
                       "bounce_classification": pl.when(pl.col("bounce_class") == "hard").then(pl.lit("Invalid Address")).otherwise(pl.lit("Technical"))},
            "dropped": {"reason": pl.lit("Bounced Address"), "status": pl.lit("5.0.0")},
            "open": {"useragent": pl.col("useragent"), "ip": pl.col("ip"), "sg_machine_open": pl.col("machine")},
            "click": {"useragent": pl.col("useragent"), "ip": pl.col("ip"), "url": pl.col("url"), "url_offset": pl.struct(index=pl.lit(0), type=pl.lit("html"))},
            "processed": {},
            "unsubscribe": {},
            "spamreport": {},
        }
        for event, fields in extra.items():
            part = sg.filter(pl.col("event") == event)
            if part.height:
                out.append(part.select("t", "send_idx", "event_uid", provider=pl.lit("sendgrid"),
                                       body=pl.struct(**base, **fields).struct.json_encode()))
    pm = e.filter((pl.col("email_provider") == "postmark") & (pl.col("kind") != "processed"))
    if pm.height:
        offsets = rng.random(pm.height)
        # Postmark's timestamps come with various offsets: UTC 'Z' or US Eastern local time
        local = pl.col("t").cast(pl.Datetime("us", "UTC")).dt.convert_time_zone("America/New_York").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f%:z")
        utc = _iso(pl.col("t"), "%Y-%m-%dT%H:%M:%S%.6fZ")
        pm = pm.with_columns(when=pl.when(pl.Series(offsets < 0.5)).then(local).otherwise(utc))
        common = {"MessageID": pl.col("email_provider_id"), "ServerID": pl.lit(23), "MessageStream": pl.lit("outbound"),
                  "Tag": pl.col("_template"), "Metadata": pl.struct(campaign=pl.col("_campaign_name"))}
        client = pl.struct(Name=pl.lit("Gmail"), Company=pl.lit("Google"), Family=pl.lit("Gmail"))
        shapes = {
            "delivered": {"RecordType": pl.lit("Delivery"), "Recipient": pl.col("recipient_email"),
                          "DeliveredAt": pl.col("when"), "Details": pl.lit("smtp;250 2.0.0 OK")},
            "deferred": None,
            "bounce": {"RecordType": pl.lit("Bounce"), "ID": pl.col("pm_id"),
                       "Type": pl.when(pl.col("bounce_class") == "hard").then(pl.lit("HardBounce")).otherwise(pl.lit("SoftBounce")),
                       "TypeCode": pl.when(pl.col("bounce_class") == "hard").then(pl.lit(1)).otherwise(pl.lit(4096)),
                       "Name": pl.when(pl.col("bounce_class") == "hard").then(pl.lit("Hard bounce")).otherwise(pl.lit("Soft bounce")),
                       "Description": pl.lit("The server was unable to deliver your message."),
                       "Details": pl.lit("smtp;550 5.1.1 The email account that you tried to reach does not exist."),
                       "Email": pl.col("recipient_email"), "From": pl.col("from_email"), "BouncedAt": pl.col("when"),
                       "DumpAvailable": pl.lit(False), "Inactive": pl.col("bounce_class") == "hard", "CanActivate": pl.lit(True),
                       "Subject": pl.col("subject")},
            "open": {"RecordType": pl.lit("Open"), "FirstOpen": pl.lit(True), "Client": client,
                     "Platform": pl.lit("WebMail"), "UserAgent": pl.col("useragent"), "ReadSeconds": pl.lit(5),
                     "Geo": pl.struct(IP=pl.col("ip")), "ReceivedAt": pl.col("when"), "Recipient": pl.col("recipient_email")},
            "click": {"RecordType": pl.lit("Click"), "ClickLocation": pl.lit("HTML"), "Client": client,
                      "Platform": pl.lit("Desktop"), "UserAgent": pl.col("useragent"), "OriginalLink": pl.col("url"),
                      "Geo": pl.struct(IP=pl.col("ip")), "ReceivedAt": pl.col("when"), "Recipient": pl.col("recipient_email")},
            "spam_report": {"RecordType": pl.lit("SpamComplaint"), "ID": pl.col("pm_id"), "Type": pl.lit("SpamComplaint"),
                            "TypeCode": pl.lit(512), "Name": pl.lit("Spam complaint"), "Email": pl.col("recipient_email"),
                            "From": pl.col("from_email"), "BouncedAt": pl.col("when"), "DumpAvailable": pl.lit(True),
                            "Inactive": pl.lit(True), "CanActivate": pl.lit(False), "Subject": pl.col("subject")},
            "unsubscribe": {"RecordType": pl.lit("SubscriptionChange"), "ChangedAt": pl.col("when"),
                            "Recipient": pl.col("recipient_email"), "Origin": pl.lit("Recipient"),
                            "SuppressSending": pl.lit(True), "SuppressionReason": pl.lit("ManualSuppression")},
            "dropped": None,
        }
        for kind, fields in shapes.items():
            part = pm.filter(pl.col("kind") == kind)
            if fields is None or part.height == 0:
                continue
            if kind == "open":  # Postmark reports FirstOpen only once per message
                part = part.with_columns(FirstOpen=pl.col("t").rank("ordinal").over("send_idx") == 1)
                fields = {**fields, "FirstOpen": pl.col("FirstOpen")}
            out.append(part.select("t", "send_idx", "event_uid", provider=pl.lit("postmark"),
                                   body=pl.struct(**fields, **common).struct.json_encode()))
    rs = e.filter(pl.col("email_provider") == "resend")
    if rs.height:
        rs = rs.with_columns(tag_list=pl.Series(rng.random(rs.height) < 0.5))
        rtype = {"processed": "email.sent", "delivered": "email.delivered", "deferred": "email.delivery_delayed",
                 "bounce": "email.bounced", "open": "email.opened", "click": "email.clicked",
                 "spam_report": "email.complained"}
        for kind, typ in rtype.items():
            part = rs.filter(pl.col("kind") == kind)
            if part.height == 0:
                continue
            data = {
                "created_at": _iso(pl.col("sent_at"), "%Y-%m-%dT%H:%M:%S%.6f+00:00"),
                "email_id": pl.col("email_provider_id"),
                "from": pl.format("BuildDesk <{}>", pl.col("from_email")),
                "to": pl.concat_list(pl.col("recipient_email")),
                "subject": pl.col("subject"),
            }
            if kind == "bounce":
                data["bounce"] = pl.struct(
                    message=pl.lit("The recipient's mail server rejected the message."),
                    subType=pl.when(pl.col("bounce_class") == "hard").then(pl.lit("General")).otherwise(pl.lit("MailboxFull")),
                    type=pl.when(pl.col("bounce_class") == "hard").then(pl.lit("Permanent")).otherwise(pl.lit("Transient")))
            if kind == "click":
                data["click"] = pl.struct(ipAddress=pl.col("ip"), link=pl.col("url"), timestamp=_iso(pl.col("t")),
                                          userAgent=pl.col("useragent"))
            with_obj = part.filter(~pl.col("tag_list"))
            with_list = part.filter(pl.col("tag_list"))
            for frame, tags in ((with_obj, pl.struct(category=pl.col("_template"))),
                                (with_list, pl.concat_list(pl.struct(name=pl.lit("category"), value=pl.col("_template"))))):
                if frame.height:
                    out.append(frame.select("t", "send_idx", "event_uid", provider=pl.lit("resend"), body=pl.struct(
                        type=pl.lit(typ), created_at=_iso(pl.col("t")), data=pl.struct(**data, tags=tags)).struct.json_encode()))
    return pl.concat(out).sort("t")


def deliveries(bodies: pl.DataFrame, rng: np.random.Generator, late_share: float = 0.01) -> pl.DataFrame:
    """Group events into HTTP deliveries as each provider does, with receive times and headers.

    SendGrid batches events (a JSON array per POST); Postmark and Resend POST one object each.
    ``late_share`` of deliveries arrive hours to days late (provider retries and backlogs).
    """
    n = bodies.height
    delay_s = rng.exponential(20.0, size=n) + 1.0
    late = rng.random(n) < late_share
    delay_s[late] += rng.exponential(2 * 86_400, size=int(late.sum()))
    b = bodies.with_columns(received_us=pl.col("t") + pl.Series((delay_s * 1_000_000).astype(np.int64)))
    sg = b.filter(pl.col("provider") == "sendgrid")
    # SendGrid flushes a batch per minute or per ~25 events, whichever comes first
    sg = sg.sort("received_us").with_columns(minute=pl.col("received_us") // 60_000_000)
    sg = sg.with_columns(batch=(pl.int_range(pl.len()).over("minute") // 25))
    sg_deliv = sg.group_by("minute", "batch", maintain_order=True).agg(
        received_us=pl.col("received_us").max(),
        body=pl.lit("[") + pl.col("body").str.join(",") + pl.lit("]"),
        n_events=pl.len(),
    ).select("received_us", "body", "n_events", provider=pl.lit("sendgrid"))
    single = b.filter(pl.col("provider") != "sendgrid").select(
        "received_us", "body", n_events=pl.lit(1, dtype=pl.UInt32), provider="provider")
    d = pl.concat([sg_deliv.with_columns(pl.col("n_events").cast(pl.UInt32)), single]).sort("received_us")
    m = d.height
    svix_id = "msg_" + pl.Series(_b64ids(rng, m, 18)).str.replace_all(r"[-_]", "x")
    d = d.with_columns(svix_id=svix_id)
    return d


def landing_lines(d: pl.DataFrame) -> pl.DataFrame:
    """Deliveries as landing-zone lines: {"provider", "received_at", "headers", "body"}."""
    received = _iso(pl.col("received_us"), "%Y-%m-%dT%H:%M:%S%.6fZ")
    headers = pl.struct(**{
        "content-type": pl.when(pl.col("provider") == "sendgrid").then(pl.lit("application/json"))
        .otherwise(pl.lit("application/json; charset=utf-8")),
        "user-agent": pl.col("provider").replace_strict({"sendgrid": "SendGrid Event API", "postmark": "Postmark",
                                                         "resend": "Svix-Webhooks/1.62"}),
        "svix-id": pl.when(pl.col("provider") == "resend").then(pl.col("svix_id")),
        "svix-timestamp": pl.when(pl.col("provider") == "resend").then((pl.col("received_us") // 1_000_000).cast(pl.String)),
        "x-twilio-email-event-webhook-timestamp": pl.when(pl.col("provider") == "sendgrid").then((pl.col("received_us") // 1_000_000).cast(pl.String)),
    })
    return d.with_columns(
        line=pl.struct(provider=pl.col("provider"), received_at=received, headers=headers, body=pl.col("body")).struct.json_encode()
        # drop the headers a provider does not send (json_encode writes them as null)
        .str.replace_all(r',"(svix-id|svix-timestamp|x-twilio-email-event-webhook-timestamp)":null', ""),
        day=pl.col("received_us").cast(pl.Datetime("us")).dt.strftime("%Y-%m-%d"),
        hour=pl.col("received_us").cast(pl.Datetime("us")).dt.strftime("%H"),
    )


def write_landing(lines: pl.DataFrame, root: Path, writer_id: str) -> list[Path]:
    """Append lines to ``<root>/<provider>/dt=<day>/<HH>-<writer_id>.ndjson`` (one file per hour).

    Each file's text is joined by Polars; the writes run on a thread pool because creating
    thousands of small files is bound by file-system latency, not CPU.
    """
    from concurrent.futures import ThreadPoolExecutor

    files = (lines.sort("received_us")
             .group_by(["provider", "day", "hour"], maintain_order=True)
             .agg(text=pl.col("line").str.join("\n") + "\n"))
    paths = [root / p / f"dt={d}" / f"{h}-{writer_id}.ndjson"
             for p, d, h in zip(files["provider"], files["day"], files["hour"])]
    for folder in {p.parent for p in paths}:
        folder.mkdir(parents=True, exist_ok=True)

    def write(item: tuple[Path, str]) -> None:
        with open(item[0], "a", encoding="utf-8") as fh:
            fh.write(item[1])

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, zip(paths, files["text"].to_list())))
    return paths
