{#- Each live lead's engagement segment as of the as-of day (rules and inputs: int_engagement_segments). -#}

select
    record_id as lead_id,
    company_id,
    rep_id,
    rep_name,
    segment,
    segment_order,
    fit,
    is_customer,
    last_activity_at,
    days_since_activity,
    recent_activities,
    has_recent_intent,
    last_intent_at,
    last_touch_at,
    as_of_date
from {{ ref('int_engagement_segments') }}
where record_type = 'lead'
