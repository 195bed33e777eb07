{#- Each live contact's engagement segment as of the as-of day (rules and inputs: int_engagement_segments;
    contacts have no web activity, so no intent signal, and no budget, so no fit). -#}

select
    record_id as contact_id,
    company_id,
    rep_id,
    rep_name,
    segment,
    segment_order,
    is_customer,
    last_activity_at,
    days_since_activity,
    recent_activities,
    as_of_date
from {{ ref('int_engagement_segments') }}
where record_type = 'contact'
