{#-
  Which sources bring customers: one row per company x lead source x UTM source x UTM medium x UTM
  campaign x lead cohort month (month the lead was created, UTC), from int_lead_journeys (the journey
  funnel_conversion counts too). A lead without a UTM field has '(none)' in it. Rates are over the group's
  leads; won revenue sums the won deals of its leads (fct_deals.won_value); the medians are days from the
  lead's creation to its first deal (fractional) and to its first won deal's close date (whole days).
-#}

with

companies as (

    select company_id, name as company_name from {{ ref('stg_builddesk__companies') }}

),

journeys as (

    select
        *,
        coalesce(utm_source, '(none)') as utm_source_key,
        coalesce(utm_medium, '(none)') as utm_medium_key,
        coalesce(utm_campaign, '(none)') as utm_campaign_key
    from {{ ref('int_lead_journeys') }}

),

final as (

    select
        journeys.company_id,
        companies.company_name,
        journeys.lead_source,
        journeys.utm_source_key as utm_source,
        journeys.utm_medium_key as utm_medium,
        journeys.utm_campaign_key as utm_campaign,
        journeys.cohort_month,
        count(*) as leads,
        sum(case when has_demo_request then 1 else 0 end) as demos,
        sum(case when has_deal then 1 else 0 end) as deals,
        sum(case when has_won then 1 else 0 end) as wins,
        cast(coalesce(sum(won_value), 0) as decimal(18, 2)) as won_revenue,
        cast(100.0 * sum(case when has_demo_request then 1 else 0 end) / count(*) as decimal(5, 2)) as demo_rate,
        cast(100.0 * sum(case when has_deal then 1 else 0 end) / count(*) as decimal(5, 2)) as deal_rate,
        cast(100.0 * sum(case when has_won then 1 else 0 end) / count(*) as decimal(5, 2)) as win_rate,
        cast(100.0 * sum(case when has_won then 1 else 0 end)
            / nullif(sum(case when has_deal then 1 else 0 end), 0) as decimal(5, 2)) as deal_win_rate,
        cast({{ median('lead_to_deal_days') }} as decimal(9, 2)) as median_days_to_deal,
        cast({{ median('lead_to_win_days') }} as decimal(9, 2)) as median_days_to_win
    from journeys
    left join companies on companies.company_id = journeys.company_id
    group by journeys.company_id, companies.company_name, journeys.lead_source, journeys.utm_source_key,
        journeys.utm_medium_key, journeys.utm_campaign_key, journeys.cohort_month

)

select * from final
