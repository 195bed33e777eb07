{#-
  One row per lead created by the end of the as-of day. rule_score sums the seed's weight over the lead's live activities (both
  e-mail spellings count); decayed_score weighs each activity by 0.5 ^ (age in days at the as-of
  day / var lead_score_half_life_days); grade cuts decayed_score at var lead_grade_hot /
  lead_grade_warm (macros decayed_weight and lead_grade: the same score as lead_score_history's). operational_recomputed_score is the trigger's own arithmetic (only the
  spellings it knows), so score_drift = operational_lead_score - rule_score shows the e-mail
  engagement the operational score misses (and any other divergence).
-#}

{%- set types = ['page_view', 'form_submit', 'email_open', 'email_click', 'demo_request',
                 'pricing_viewed', 'signup_started', 'resource_downloaded'] -%}

with

leads as (

    select * from {{ ref('int_leads_with_tenant') }}
    where created_at < (select as_of_end_utc from {{ ref('int_as_of') }})

),

activities as (

    select * from {{ ref('stg_builddesk__lead_activities') }}
    where not is_deleted
        and created_at < (select as_of_end_utc from {{ ref('int_as_of') }})

),

weights as (

    select * from {{ ref('lead_score_weights') }}

),

as_of as (

    select * from {{ ref('int_as_of') }}

),

scored as (

    select
        activities.lead_id,
        activities.activity_type,
        activities.created_at,
        coalesce(weights.weight, 0) as weight,
        case when weights.in_operational_trigger then weights.weight else 0 end as trigger_weight,
        {{ decayed_weight('coalesce(weights.weight, 0)', 'activities.created_at', 'as_of.as_of_end_utc') }} as decayed_weight
    from activities
    cross join as_of
    left join weights on weights.activity_type = activities.activity_type

),

per_lead as (

    select
        lead_id,
        count(*) as activities,
        {% for t in types %}
        sum(case when activity_type = '{{ t }}' then 1 else 0 end) as {{ t }}_count,
        {% endfor %}
        sum(weight) as rule_score,
        sum(trigger_weight) as operational_recomputed_score,
        sum(decayed_weight) as decayed_score,
        max(created_at) as last_activity_at
    from scored
    group by lead_id

),

final as (

    select
        leads.lead_id,
        leads.company_id,
        leads.lead_source,
        leads.lead_status,
        leads.assigned_to as rep_id,
        reps.rep_name,
        leads.created_at,
        coalesce(per_lead.activities, 0) as activities,
        {% for t in types %}
        coalesce(per_lead.{{ t }}_count, 0) as {{ t }}_count,
        {% endfor %}
        coalesce(per_lead.rule_score, 0) as rule_score,
        {{ score_2dp('coalesce(per_lead.decayed_score, 0)') }} as decayed_score,
        {{ lead_grade('coalesce(per_lead.decayed_score, 0)') }} as grade,
        leads.operational_lead_score,
        coalesce(per_lead.operational_recomputed_score, 0) as operational_recomputed_score,
        leads.operational_lead_score - coalesce(per_lead.rule_score, 0) as score_drift,
        per_lead.last_activity_at,
        leads.is_deleted
    from leads
    left join per_lead on per_lead.lead_id = leads.lead_id
    left join {{ ref('dim_reps') }} as reps on reps.rep_id = leads.assigned_to

)

select * from final
