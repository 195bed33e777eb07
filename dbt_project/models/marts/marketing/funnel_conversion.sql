{#-
  One row per company x lead cohort month (month the lead was created, UTC) x lead source:
  leads -> demo requested (a demo request of the lead, or the lead's requested_demo flag) -> demo
  completed -> deal (a live deal of the lead) -> won, each lead's journey from int_lead_journeys. Rates are over the cohort's leads; step
  medians are in days: lead to demo request, demo completed to deal creation, proposal sent (the
  deal's first proposal_sent activity) to close.
-#}

with

companies as (

    select company_id, name as company_name from {{ ref('stg_builddesk__companies') }}

),

journeys as (

    select * from {{ ref('int_lead_journeys') }}

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
