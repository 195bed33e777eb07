{#-
  What the learned conversion score (crm_warehouse/conversion_model.py, asset marts/lead_conversion_scores)
  learns from and scores: one row per live lead created by the end of the as-of day, its features as of
  features_at, the lead's creation plus var lead_score_calibration_days (the same fixed age at which
  lead_score_calibration judges the rule score), or the end of the as-of day for a younger lead.

  No leakage: every count reads only rows created (activities, requests) or occurring (provider events)
  before features_at, so nothing that happened after that instant, and nothing of the outcome, changes a
  feature. The lead's own fields are its attributes at sign-up (source, UTM, referrer, company, title, budget,
  project type); lead_score, lead_status and the requested_*/viewed_* flags are left out: the operational
  system rewrites them as the lead moves on.

  Outcomes (as lead_score_calibration defines them): converted = its first deal created within
  var lead_score_outcome_days after features_at; won = that, and a won deal closed within the horizon.
  outcome_known once features_at plus the horizon has passed by the as-of day; a lead whose first deal came
  before features_at is neither trained on nor scored (it had converted when it would be judged).
  is_open: no deal yet and not lost or converted by the source's status: the leads the score is for.
-#}

{%- set activity_types = ['page_view', 'pricing_viewed', 'email_open', 'email_click', 'resource_downloaded',
                          'form_submit', 'signup_started', 'demo_request'] -%}

with

as_of as (

    select * from {{ ref('int_as_of') }}

),

journeys as (

    select * from {{ ref('int_lead_journeys') }}

),

leads as (

    select * from {{ ref('int_leads_with_tenant') }}

),

judged as (

    select
        journeys.lead_id,
        journeys.created_at,
        {{ plus_days('journeys.created_at', var('lead_score_calibration_days')) }} as judged_at,
        as_of.as_of_end_utc
    from journeys
    cross join as_of

),

cutoffs as (

    select
        lead_id,
        created_at,
        case when judged_at <= as_of_end_utc then judged_at else as_of_end_utc end as features_at,
        judged_at <= as_of_end_utc as features_complete,
        {{ plus_days('judged_at', var('lead_score_outcome_days')) }} <= as_of_end_utc as outcome_known
    from judged

),

activities as (

    select
        cutoffs.lead_id,
        count(*) as activities,
        {% for t in activity_types %}
        sum(case when activities.activity_type = '{{ t }}' then 1 else 0 end) as {{ t }}_activities,
        {% endfor %}
        count(distinct {{ utc_date('activities.created_at') }}) as active_days
    from cutoffs
    inner join {{ ref('stg_builddesk__lead_activities') }} as activities
        on activities.lead_id = cutoffs.lead_id
        and activities.created_at < cutoffs.features_at
    where not activities.is_deleted
    group by cutoffs.lead_id

),

requests as (

    select lead_id, sum(demo) as demo_requests, sum(sales) as sales_contact_requests
    from (
        select cutoffs.lead_id, 1 as demo, 0 as sales
        from cutoffs
        inner join {{ ref('stg_builddesk__demo_requests') }} as demos
            on demos.lead_id = cutoffs.lead_id and demos.created_at < cutoffs.features_at
        where not demos.is_deleted
        union all
        select cutoffs.lead_id, 0, 1
        from cutoffs
        inner join {{ ref('stg_builddesk__sales_contact_requests') }} as contact_requests
            on contact_requests.lead_id = cutoffs.lead_id and contact_requests.created_at < cutoffs.features_at
        where not contact_requests.is_deleted
    ) as r
    group by lead_id

),

email_engagement as (

    select
        cutoffs.lead_id,
        sum(case when events.event_type = 'open' and not coalesce(events.is_machine_open, false) then 1 else 0 end)
            as email_opens,
        sum(case when events.event_type = 'click' then 1 else 0 end) as email_clicks
    from cutoffs
    inner join leads on leads.lead_id = cutoffs.lead_id
    inner join {{ ref('stg_email__events') }} as events
        on lower(events.recipient_email) = lower(trim(leads.email))
        and events.occurred_at < cutoffs.features_at
    where not events.is_deleted and events.event_type in ('open', 'click')
    group by cutoffs.lead_id

),

final as (

    select
        journeys.lead_id,
        journeys.company_id,
        journeys.created_at,
        cutoffs.features_at,
        cutoffs.features_complete,
        journeys.lead_source,
        coalesce(leads.utm_medium, case when leads.utm_source is not null then '(none)' end, '(no utm)') as utm_medium,
        leads.referrer is not null and leads.referrer <> '' as has_referrer,
        nullif(trim(coalesce(leads.phone, '')), '') is not null as has_phone,
        nullif(trim(coalesce(leads.company_name, '')), '') is not null as has_company_name,
        coalesce(leads.decision_maker, false) or {{ is_decision_maker_title('leads.job_title') }} as is_decision_maker,
        coalesce(leads.project_type, '(none)') as project_type,
        leads.estimated_budget,
        coalesce(activities.activities, 0) as activities,
        {% for t in activity_types %}
        coalesce(activities.{{ t }}_activities, 0) as {{ t }}_activities,
        {% endfor %}
        coalesce(activities.active_days, 0) as active_days,
        coalesce(requests.demo_requests, 0) as demo_requests,
        coalesce(requests.sales_contact_requests, 0) as sales_contact_requests,
        coalesce(email_engagement.email_opens, 0) as email_opens,
        coalesce(email_engagement.email_clicks, 0) as email_clicks,
        cutoffs.outcome_known,
        coalesce(journeys.deal_created_at <= {{ plus_days('cutoffs.features_at', var('lead_score_outcome_days')) }}, false)
            as converted,
        coalesce(
            journeys.deal_created_at <= {{ plus_days('cutoffs.features_at', var('lead_score_outcome_days')) }}
            and journeys.won_date <= {{ add_days(utc_date('cutoffs.features_at'), var('lead_score_outcome_days') | int) }},
            false
        ) as won,
        not journeys.has_deal
            and coalesce(leads.lead_status, '') not in ('lost', 'converted', 'disqualified', 'unqualified') as is_open
    from journeys
    inner join cutoffs on cutoffs.lead_id = journeys.lead_id
    inner join leads on leads.lead_id = journeys.lead_id
    left join activities on activities.lead_id = journeys.lead_id
    left join requests on requests.lead_id = journeys.lead_id
    left join email_engagement on email_engagement.lead_id = journeys.lead_id
    -- a lead whose first deal came before its features were taken had converted by then
    where journeys.deal_created_at is null or journeys.deal_created_at > cutoffs.features_at

)

select * from final
