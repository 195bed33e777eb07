"""Enumerated columns: the values BuildDesk documents, and the operational lead-score weights.

``ENUMS`` are the values of the seed analysis (its CHECK lists): the simulator draws from them.
``LIVE_VALUES`` are the further values BuildDesk's live database writes itself (an enum type's
labels, a column default): documented too. Whether the source *enforces* a column's values (a
CHECK or an enum type) is not declared here: the ingest reads it from the source's catalogue at run
time, and only enforced values make an error rule (``quality.contract``).
"""

from __future__ import annotations

ENUMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("user_profiles", "role"): (
        "root_admin", "admin", "office_staff", "project_manager", "field_supervisor",
        "client_portal", "accounting",
    ),
    ("leads", "lead_source"): ("website", "referral", "social_media", "advertising", "cold_outreach"),
    ("leads", "lead_status"): ("new", "contacted", "qualified", "demo_scheduled", "converted", "lost"),
    ("leads", "status"): ("new", "contacted", "qualified", "demo_scheduled", "converted", "lost"),
    ("leads", "priority"): ("low", "medium", "high", "hot"),
    ("leads", "interest_type"): ("trial", "demo", "sales_contact", "just_browsing"),
    ("leads", "project_type"): ("residential", "commercial", "industrial", "renovation", "new_construction"),
    ("lead_activities", "activity_type"): (
        "page_view", "form_submit", "email_open", "email_click", "demo_request",
        "pricing_viewed", "signup_started", "resource_downloaded",
    ),
    ("demo_requests", "demo_type"): ("quick_15min", "standard_30min", "full_60min"),
    ("demo_requests", "status"): ("requested", "scheduled", "completed", "cancelled", "no_show"),
    ("sales_contact_requests", "inquiry_type"): ("pricing", "enterprise", "partnership", "general"),
    ("sales_contact_requests", "timeline"): ("immediate", "1-3_months", "3-6_months", "6-12_months", "planning"),
    ("sales_contact_requests", "status"): ("new", "contacted", "in_progress", "qualified", "converted", "closed"),
    ("contacts", "contact_type"): ("prospect", "customer", "vendor", "partner", "decision_maker", "influencer"),
    ("contacts", "relationship_status"): ("active", "inactive", "lost", "won"),
    ("contacts", "preferred_contact_method"): ("email", "phone", "meeting"),
    ("opportunities", "stage"): ("prospecting", "qualified", "proposal", "negotiation", "won", "lost"),
    ("opportunities", "risk_level"): ("low", "medium", "high"),
    ("deals", "deal_type"): ("standard", "large_project", "residential", "commercial"),
    ("deals", "risk_level"): ("low", "medium", "high", "critical"),
    ("deals", "status"): ("active", "won", "lost", "on_hold"),
    ("deals", "priority"): ("low", "medium", "high", "urgent"),
    ("pipeline_templates", "deal_type"): ("standard", "large_project", "residential", "commercial"),
    ("deal_activities", "activity_type"): (
        "call", "email", "meeting", "note", "task", "proposal_sent", "contract_signed",
    ),
    ("crm_activities", "activity_type"): ("call", "email", "meeting", "note", "site_visit", "follow_up"),
    ("email_campaigns", "campaign_type"): (
        "onboarding", "trial_nurture", "promotional", "transactional", "reengagement",
    ),
    ("email_campaigns", "trigger_type"): ("manual", "scheduled", "behavioral", "lifecycle"),
    ("email_sends", "email_provider"): ("sendgrid", "postmark", "resend"),
    ("email_sends", "status"): ("pending", "queued", "sent", "delivered", "bounced", "failed", "dropped"),
    ("email_sends", "bounce_type"): ("hard", "soft", "block"),
    ("email_queue", "status"): ("pending", "processing", "sent", "failed", "cancelled"),
    ("email_unsubscribes", "unsubscribe_type"): ("all", "promotional", "newsletter", "transactional_optional"),
    ("email_unsubscribes", "reason"): ("too_frequent", "not_relevant", "never_signed_up", "other"),
    ("email_unsubscribes", "unsubscribed_via"): ("link", "preference_center", "complaint"),
    ("email_preferences", "email_frequency"): ("high", "normal", "low"),
    ("email_preferences", "digest_frequency"): ("daily", "weekly", "monthly"),
    ("sales_quotas", "quota_period"): ("monthly", "quarterly", "yearly"),
    ("lead_routing_rules", "set_priority"): ("low", "medium", "high", "hot"),
    ("pipeline_metrics", "period_type"): ("daily", "weekly", "monthly", "quarterly"),
    ("estimates", "status"): ("draft", "sent", "accepted", "rejected", "expired"),
    ("tasks", "status"): ("open", "in_progress", "completed", "cancelled"),
    ("tasks", "priority"): ("low", "medium", "high", "urgent"),
}

# Weights of the operational update_lead_score() trigger, spelled as the trigger spells them.
TRIGGER_SCORE_WEIGHTS: dict[str, int] = {
    "demo_request": 50,
    "pricing_viewed": 20,
    "signup_started": 30,
    "resource_downloaded": 15,
    "email_opened": 5,
    "email_clicked": 10,
    "page_view": 1,
}



# Values the live schema adds (enum labels, defaults) beyond the analysis' lists.
LIVE_VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    ("user_profiles", "role"): (
        "technician", "foreman", "superintendent", "estimator", "safety_officer", "quality_inspector",
        "equipment_operator", "journeyman", "apprentice", "laborer",
    ),
    ("demo_requests", "demo_type"): ("standard",),
    ("tasks", "status"): ("pending",),
    ("companies", "industry_type"): ("residential", "commercial", "civil_infrastructure", "specialty_trades"),
    ("companies", "subscription_tier"): ("starter", "professional", "enterprise"),
}


def documented(table: str, column: str) -> tuple[str, ...]:
    """Every value the contract knows for ``table.column`` (analysis and live), in order."""
    return tuple(dict.fromkeys(ENUMS.get((table, column), ()) + LIVE_VALUES.get((table, column), ())))
