{#-
  One row per company x lead cohort month (month the lead was created, UTC) x lead source:
  leads -> demo requested (a demo request of the lead, or the lead's requested_demo flag) -> demo
  completed -> deal (a live deal of the lead) -> won. Rates are over the cohort's leads; step
  medians are in days: lead to demo request, demo completed to deal creation, proposal sent (the
  deal's first proposal_sent activity) to close.
-#}

with

companies as (

    select company_id, name as company_name from {{ ref('stg_builddesk__companies') }}

),

as_of as (

    select * from {{ ref('int_as_of') }}

),

leads as (

    select * from {{ ref('int_leads_with_tenant') }}
    where not is_deleted
        and created_at < (select as_of_end_utc from as_of)

),

demos as (

    select
        lead_id,
        min(created_at) as demo_requested_at,
        min(case when status = 'completed' then coalesce(completed_at, scheduled_at) end) as demo_completed_at
    from {{ ref('stg_builddesk__demo_requests') }}
    where not is_deleted and lead_id is not null
        and created_at < (select as_of_end_utc from as_of)
    group by lead_id

),

deals as (

    select * from {{ ref('fct_deals') }}
    where not is_deleted and lead_id is not null

),

proposals as (

    select deal_id, min(created_at) as proposal_sent_at
    from {{ ref('stg_builddesk__deal_activities') }}
    where not is_deleted and activity_type = 'proposal_sent'
        and created_at < (select as_of_end_utc from as_of)
    group by deal_id

),

lead_deals as (

    select
        deals.lead_id,
        min(deals.created_at) as deal_created_at,
        max(case when deals.status = 'won' then 1 else 0 end) as is_won,
        min(case when deals.status = 'won' then deals.actual_close_date end) as won_date,
        min(case when deals.status in ('won', 'lost') then
            {{ days_between('proposals.proposal_sent_at', "cast(deals.actual_close_date as timestamp) at time zone 'UTC'") }}
        end) as proposal_to_close_days
    from deals
    left join proposals on proposals.deal_id = deals.deal_id
    group by deals.lead_id

),

journeys as (

    select
        leads.lead_id,
        leads.company_id,
        coalesce(leads.lead_source, 'unknown') as lead_source,
        {{ period_start('month', utc_date('leads.created_at')) }} as cohort_month,
        demos.demo_requested_at is not null or coalesce(leads.requested_demo, false) as has_demo_request,
        demos.demo_completed_at is not null as has_demo_completed,
        lead_deals.deal_created_at is not null as has_deal,
        coalesce(lead_deals.is_won, 0) = 1 as has_won,
        {{ days_between('leads.created_at', 'demos.demo_requested_at') }} as lead_to_demo_days,
        {{ days_between('demos.demo_completed_at', 'lead_deals.deal_created_at') }} as demo_to_deal_days,
        {{ days_between('leads.created_at', 'lead_deals.deal_created_at') }} as lead_to_deal_days,
        lead_deals.proposal_to_close_days
    from leads
    left join demos on demos.lead_id = leads.lead_id
    left join lead_deals on lead_deals.lead_id = leads.lead_id

),

final as (

    select
        journeys.company_id,
        companies.company_name,
        cohort_month,
        lead_source,
        count(*) as leads,
        sum(case when has_demo_request then 1 else 0 end) as demo_requested,
        sum(case when has_demo_completed then 1 else 0 end) as demo_completed,
        sum(case when has_deal then 1 else 0 end) as deals,
        sum(case when has_won then 1 else 0 end) as won,
        cast(100.0 * sum(case when has_demo_request then 1 else 0 end) / count(*) as decimal(5, 2)) as demo_request_rate,
        cast(100.0 * sum(case when has_demo_completed then 1 else 0 end) / count(*) as decimal(5, 2)) as demo_completed_rate,
        cast(100.0 * sum(case when has_deal then 1 else 0 end) / count(*) as decimal(5, 2)) as deal_rate,
        cast(100.0 * sum(case when has_won then 1 else 0 end) / count(*) as decimal(5, 2)) as won_rate,
        cast({{ median('lead_to_demo_days') }} as decimal(9, 2)) as median_days_lead_to_demo,
        cast({{ median('case when demo_to_deal_days >= 0 then demo_to_deal_days end') }} as decimal(9, 2)) as median_days_demo_to_deal,
        cast({{ median('lead_to_deal_days') }} as decimal(9, 2)) as median_days_lead_to_deal,
        cast({{ median('proposal_to_close_days') }} as decimal(9, 2)) as median_days_proposal_to_close
    from journeys
    left join companies on companies.company_id = journeys.company_id
    group by journeys.company_id, companies.company_name, cohort_month, lead_source

)

select * from final
