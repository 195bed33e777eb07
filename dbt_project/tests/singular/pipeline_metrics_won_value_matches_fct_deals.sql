{{ config(meta={'dagster': {'ref': {'name': 'pipeline_metrics'}}}) }}

-- Invariant: won value per company, pipeline and month in pipeline_metrics equals the won deals of fct_deals
-- closed that month (actual_value, else estimated_value). Returns the months that disagree.
with

metrics as (

    select company_id, template_id, metric_date, won_value, deals_won
    from {{ ref('pipeline_metrics') }}
    where period_type = 'monthly'

),

deals as (

    select
        company_id,
        template_id,
        {{ period_start('month', 'actual_close_date') }} as metric_date,
        sum(coalesce(actual_value, estimated_value)) as won_value,
        count(*) as deals_won
    from {{ ref('fct_deals') }}
    where status = 'won' and not is_deleted
        and actual_close_date <= (select as_of_date from {{ ref('int_as_of') }})
    group by 1, 2, 3

)

select
    coalesce(metrics.company_id, deals.company_id) as company_id,
    coalesce(metrics.template_id, deals.template_id) as template_id,
    coalesce(metrics.metric_date, deals.metric_date) as metric_date,
    metrics.won_value as metrics_won_value,
    deals.won_value as deals_won_value
from metrics
full outer join deals
    on deals.company_id = metrics.company_id
    and deals.template_id = metrics.template_id
    and deals.metric_date = metrics.metric_date
where abs(coalesce(metrics.won_value, 0) - coalesce(deals.won_value, 0)) > 0.005
    or coalesce(metrics.deals_won, 0) <> coalesce(deals.deals_won, 0)
