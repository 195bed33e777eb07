{{ config(meta={'dagster': {'ref': {'name': 'funnel_conversion'}}}) }}

-- Invariant: the funnel's cohorts add up to the live leads created by the end of the as-of day, per company. Returns the companies that disagree.
with

funnel as (

    select company_id, sum(leads) as leads
    from {{ ref('funnel_conversion') }}
    group by company_id

),

leads as (

    select company_id, count(*) as leads
    from {{ ref('dim_leads') }}
    where not is_deleted
        and created_at < (select as_of_end_utc from {{ ref('int_as_of') }})
    group by company_id

)

select coalesce(funnel.company_id, leads.company_id) as company_id, funnel.leads as funnel_leads, leads.leads
from funnel
full outer join leads on leads.company_id = funnel.company_id
where coalesce(funnel.leads, -1) <> coalesce(leads.leads, -1)
