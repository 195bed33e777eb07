{#-
  One row per company x expected close month of its live open deals (active or on hold; the grain
  PRODUCT.md names). Deals whose expected close date has passed, or that have none, are counted in
  the as-of month, and that row says how many of its deals and how much of its value they are
  (overdue_*, undated_*), so the month's own expected closes can be read apart from them.
  Two weightings: the current stage's probability, and the stage-to-won rate learned from closed
  deals of the same template (share of closed deals that visited the stage and ended won; the
  stage probability where no closed deal visited it).
-#}

with

as_of as (

    select * from {{ ref('int_as_of') }}

),

deals as (

    select * from {{ ref('fct_deals') }}
    where not is_deleted

),

visits as (

    select * from {{ ref('fct_deal_stage_transitions') }}

),

stage_win_rates as (

    select
        visits.stage_id,
        count(distinct visits.deal_id) as closed_deals_visiting,
        count(distinct case when deals.status = 'won' then visits.deal_id end) as won_deals_visiting
    from visits
    inner join deals on deals.deal_id = visits.deal_id and deals.status in ('won', 'lost')
    group by visits.stage_id

),

open_deals as (

    select
        deals.*,
        {{ period_start('month', "case when deals.expected_close_date < as_of.as_of_date or deals.expected_close_date is null then as_of.as_of_date else deals.expected_close_date end") }} as close_month,
        case
            when deals.expected_close_date is null then 'undated'
            when deals.expected_close_date < as_of.as_of_date then 'overdue'
            else 'scheduled'
        end as forecast_bucket,
        coalesce(
            1.0 * stage_win_rates.won_deals_visiting / nullif(stage_win_rates.closed_deals_visiting, 0),
            deals.current_stage_probability / 100.0
        ) as learned_win_rate
    from deals
    cross join as_of
    left join stage_win_rates on stage_win_rates.stage_id = deals.current_stage_id
    where deals.status in ('active', 'on_hold')

),

final as (

    select
        company_id,
        company_name,
        close_month,
        count(*) as open_deals,
        cast(sum(estimated_value) as decimal(15, 2)) as open_value,
        sum({{ weighted_value('estimated_value', 'coalesce(current_stage_probability, 0)') }}) as stage_weighted_value,
        cast(sum(estimated_value * learned_win_rate) as decimal(15, 2)) as history_weighted_value,
        sum(case when status = 'on_hold' then 1 else 0 end) as on_hold_deals,
        sum(case when forecast_bucket = 'overdue' then 1 else 0 end) as overdue_deals,
        cast(coalesce(sum(case when forecast_bucket = 'overdue' then estimated_value end), 0) as decimal(15, 2))
            as overdue_value,
        sum(case when forecast_bucket = 'undated' then 1 else 0 end) as undated_deals,
        cast(coalesce(sum(case when forecast_bucket = 'undated' then estimated_value end), 0) as decimal(15, 2))
            as undated_value
    from open_deals
    group by company_id, company_name, close_month

)

select * from final
