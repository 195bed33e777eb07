{#-
  One row per live lead created by the end of the as-of day: its cohort and attribution fields and the
  milestones of its journey (demo requested and held, first deal, won), one definition read by
  funnel_conversion, lead_source_effectiveness and lead_score_calibration. A lead's deal is a live deal
  naming it (fct_deals.lead_id); a lead with several deals has its first deal (earliest created, then the
  least id), is won when any of them is won, and its won_value sums the won ones.
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

ranked_deals as (

    select
        deal_id,
        lead_id,
        created_at,
        row_number() over (partition by lead_id order by created_at, cast(deal_id as varchar)) as deal_rank
    from deals

),

lead_deals as (

    select
        deals.lead_id,
        min(deals.created_at) as deal_created_at,
        max(case when deals.status = 'won' then 1 else 0 end) as is_won,
        min(case when deals.status = 'won' then deals.actual_close_date end) as won_date,
        sum(case when deals.status = 'won' then deals.won_value end) as won_value,
        min(case when deals.status in ('won', 'lost') then
            {{ days_between('proposals.proposal_sent_at', "cast(deals.actual_close_date as timestamp) at time zone 'UTC'") }}
        end) as proposal_to_close_days
    from deals
    left join proposals on proposals.deal_id = deals.deal_id
    group by deals.lead_id

),

final as (

    select
        leads.lead_id,
        leads.company_id,
        coalesce(leads.lead_source, 'unknown') as lead_source,
        leads.utm_source,
        leads.utm_medium,
        leads.utm_campaign,
        leads.referrer,
        leads.created_at,
        {{ period_start('month', utc_date('leads.created_at')) }} as cohort_month,
        demos.demo_requested_at,
        demos.demo_completed_at,
        demos.demo_requested_at is not null or coalesce(leads.requested_demo, false) as has_demo_request,
        demos.demo_completed_at is not null as has_demo_completed,
        first_deal.deal_id as first_deal_id,
        lead_deals.deal_created_at,
        lead_deals.deal_created_at is not null as has_deal,
        coalesce(lead_deals.is_won, 0) = 1 as has_won,
        lead_deals.won_date,
        lead_deals.won_value,
        {{ days_between('leads.created_at', 'demos.demo_requested_at') }} as lead_to_demo_days,
        {{ days_between('demos.demo_completed_at', 'lead_deals.deal_created_at') }} as demo_to_deal_days,
        {{ days_between('leads.created_at', 'lead_deals.deal_created_at') }} as lead_to_deal_days,
        {{ date_diff_days(utc_date('leads.created_at'), 'lead_deals.won_date') }} as lead_to_win_days,
        lead_deals.proposal_to_close_days
    from leads
    left join demos on demos.lead_id = leads.lead_id
    left join lead_deals on lead_deals.lead_id = leads.lead_id
    left join ranked_deals as first_deal on first_deal.lead_id = leads.lead_id and first_deal.deal_rank = 1

)

select * from final
