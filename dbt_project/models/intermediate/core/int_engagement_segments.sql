{#-
  Every live lead and contact in exactly one engagement segment as of the as-of day: the first rule that
  holds, in the order of var-driven rules (dbt_project.yml, vars segment_*):
    1. customer_at_risk: a customer (a won deal of it; a contact also by contact_type 'customer' or
       relationship_status 'won') with no activity within segment_at_risk_days;
    2. customer: any other customer;
    3. hot_untouched: an intent signal within segment_intent_days (a lead activity of segment_intent_types, a
       demo or sales-contact request), fit not low, and no rep touch since the latest signal;
    4. engaged: segment_engaged_activities or more activities within segment_recent_days, or an intent
       signal within segment_intent_days;
    5. nurturing: any activity within segment_dormant_days;
    6. dormant: the rest.
  Activity: a lead's web activities (lead_activities) and rep touches (int_lead_touches); a contact's
  activity-feed rows (fct_crm_activities) and last_contact_date. Fit: high when the lead's estimated_budget
  is at least segment_fit_min_budget, low below it, unknown without a budget (contacts).
-#}


with

as_of as (

    select * from {{ ref('int_as_of') }}

),

leads as (

    select * from {{ ref('int_leads_with_tenant') }}
    where not is_deleted
        and created_at < (select as_of_end_utc from as_of)

),

lead_activity as (

    select
        activities.lead_id,
        max(activities.created_at) as last_activity_at,
        sum(case when {{ days_between('activities.created_at', 'as_of.as_of_end_utc') }} <= {{ var('segment_recent_days') }}
            then 1 else 0 end) as recent_activities,
        max(case when activities.activity_type in (
                {% for t in var('segment_intent_types') %}'{{ t }}'{% if not loop.last %}, {% endif %}{% endfor %})
            then activities.created_at end) as last_intent_at
    from {{ ref('stg_builddesk__lead_activities') }} as activities
    cross join as_of
    where not activities.is_deleted
        and activities.created_at < as_of.as_of_end_utc
    group by activities.lead_id

),

lead_requests as (

    select lead_id, max(created_at) as last_request_at
    from (
        select lead_id, created_at from {{ ref('stg_builddesk__demo_requests') }} where not is_deleted
        union all
        select lead_id, created_at from {{ ref('stg_builddesk__sales_contact_requests') }} where not is_deleted
    ) as requests
    where lead_id is not null
        and created_at < (select as_of_end_utc from as_of)
    group by lead_id

),

lead_touches as (

    select lead_id, max(touched_at) as last_touch_at
    from {{ ref('int_lead_touches') }}
    group by lead_id

),

lead_features as (

    select
        'lead' as record_type,
        leads.lead_id as record_id,
        leads.company_id,
        leads.assigned_to as rep_id,
        greatest(lead_activity.last_activity_at, lead_touches.last_touch_at) as last_activity_at,
        coalesce(lead_activity.recent_activities, 0) as recent_activities,
        greatest(lead_activity.last_intent_at, lead_requests.last_request_at) as last_intent_at,
        lead_touches.last_touch_at,
        coalesce(journeys.has_won, false) as is_customer,
        case
            when leads.estimated_budget is null then 'unknown'
            when leads.estimated_budget >= {{ var('segment_fit_min_budget') }} then 'high'
            else 'low'
        end as fit
    from leads
    left join lead_activity on lead_activity.lead_id = leads.lead_id
    left join lead_requests on lead_requests.lead_id = leads.lead_id
    left join lead_touches on lead_touches.lead_id = leads.lead_id
    left join {{ ref('int_lead_journeys') }} as journeys on journeys.lead_id = leads.lead_id

),

contacts as (

    select * from {{ ref('stg_builddesk__contacts') }}
    where not is_deleted
        and created_at < (select as_of_end_utc from as_of)

),

contact_activity as (

    select
        feed.contact_id,
        max(feed.occurred_at) as last_activity_at,
        sum(case when {{ days_between('feed.occurred_at', 'as_of.as_of_end_utc') }} <= {{ var('segment_recent_days') }}
            then 1 else 0 end) as recent_activities
    from {{ ref('fct_crm_activities') }} as feed
    cross join as_of
    where not feed.is_deleted
        and feed.contact_id is not null
        and feed.occurred_at < as_of.as_of_end_utc
    group by feed.contact_id

),

contact_wins as (

    select distinct cast(contact_id as varchar) as contact_id
    from {{ ref('fct_deals') }}
    where not is_deleted and status = 'won' and contact_id is not null

),

contact_features as (

    select
        'contact' as record_type,
        contacts.contact_id as record_id,
        contacts.company_id,
        contacts.assigned_to as rep_id,
        greatest(
            contact_activity.last_activity_at,
            case when contacts.last_contact_date <= as_of.as_of_date
                then cast(contacts.last_contact_date as timestamp) at time zone 'UTC' end
        ) as last_activity_at,
        coalesce(contact_activity.recent_activities, 0) as recent_activities,
        cast(null as timestamp with time zone) as last_intent_at,
        cast(null as timestamp with time zone) as last_touch_at,
        contact_wins.contact_id is not null
            or contacts.contact_type = 'customer'
            or contacts.relationship_status = 'won' as is_customer,
        'unknown' as fit
    from contacts
    cross join as_of
    left join contact_activity on contact_activity.contact_id = cast(contacts.contact_id as varchar)
    left join contact_wins on contact_wins.contact_id = cast(contacts.contact_id as varchar)

),

features as (

    select * from lead_features
    union all
    select * from contact_features

),

judged as (

    select
        features.*,
        as_of.as_of_date,
        {{ days_between('features.last_activity_at', 'as_of.as_of_end_utc') }} as days_since_activity,
        features.last_intent_at is not null
            and {{ days_between('features.last_intent_at', 'as_of.as_of_end_utc') }} <= {{ var('segment_intent_days') }}
            as has_recent_intent
    from features
    cross join as_of

),

segmented as (

    select
        judged.*,
        case
            when is_customer and (days_since_activity is null or days_since_activity > {{ var('segment_at_risk_days') }})
                then 'customer_at_risk'
            when is_customer then 'customer'
            when has_recent_intent and fit <> 'low' and (last_touch_at is null or last_touch_at < last_intent_at)
                then 'hot_untouched'
            when recent_activities >= {{ var('segment_engaged_activities') }} or has_recent_intent then 'engaged'
            when days_since_activity <= {{ var('segment_dormant_days') }} then 'nurturing'
            else 'dormant'
        end as segment
    from judged

),

final as (

    select
        segmented.record_type || ':' || cast(segmented.record_id as varchar) as member_key,
        segmented.record_type,
        segmented.record_id,
        segmented.company_id,
        segmented.rep_id,
        reps.rep_name,
        segmented.segment,
        case segmented.segment
            when 'customer_at_risk' then 1 when 'customer' then 2 when 'hot_untouched' then 3
            when 'engaged' then 4 when 'nurturing' then 5 else 6
        end as segment_order,
        segmented.fit,
        segmented.is_customer,
        segmented.last_activity_at,
        cast(floor(segmented.days_since_activity) as integer) as days_since_activity,
        segmented.recent_activities,
        segmented.has_recent_intent,
        segmented.last_intent_at,
        segmented.last_touch_at,
        segmented.as_of_date
    from segmented
    left join {{ ref('dim_reps') }} as reps on reps.rep_id = segmented.rep_id

)

select * from final
