{#-
  Sales velocity as of the as-of day, per rep and per pipeline (template) of each company: how much won
  revenue the open pipeline is expected to bring per day,
      open deals x win rate x average won deal size / average cycle length (days).
  Open deals: live deals active or on hold at the as-of day. Win rate, average won deal size (actual value,
  else the estimate) and average cycle (days from creation to close, of won deals) come from the deals that
  closed in the trailing window of var sales_velocity_window_days ending on the as-of day. Null where the
  window has no won deal (no size or cycle to use).
-#}

with

as_of as (

    select * from {{ ref('int_as_of') }}

),

deals as (

    select * from {{ ref('fct_deals') }}
    where not is_deleted

),

templates as (

    select template_id, name as template_name from {{ ref('stg_builddesk__pipeline_templates') }}

),

windowed as (

    select
        deals.*,
        {{ add_days('as_of.as_of_date', '-' ~ (var('sales_velocity_window_days') - 1)) }} as window_start,
        as_of.as_of_date,
        deals.status in ('won', 'lost')
            and deals.actual_close_date >= {{ add_days('as_of.as_of_date', '-' ~ (var('sales_velocity_window_days') - 1)) }}
            as closed_in_window
    from deals
    cross join as_of

),

scoped as (

    select 'rep' as scope, rep_id as scope_id, windowed.* from windowed where rep_id is not null
    union all
    select 'pipeline', template_id, windowed.* from windowed where template_id is not null

),

final as (

    select
        scoped.company_id,
        max(scoped.company_name) as company_name,
        scoped.scope,
        scoped.scope_id,
        max(case when scoped.scope = 'rep' then scoped.rep_name else templates.template_name end) as scope_name,
        max(scoped.window_start) as window_start,
        max(scoped.as_of_date) as as_of_date,
        sum(case when scoped.status in ('active', 'on_hold') then 1 else 0 end) as open_deals,
        sum(case when scoped.closed_in_window and scoped.status = 'won' then 1 else 0 end) as deals_won,
        sum(case when scoped.closed_in_window and scoped.status = 'lost' then 1 else 0 end) as deals_lost,
        sum(case when scoped.closed_in_window and scoped.status = 'won'
            then coalesce(scoped.actual_value, scoped.estimated_value) end) as won_value,
        sum(case when scoped.closed_in_window and scoped.status = 'won' then scoped.cycle_days end) as won_cycle_days
    from scoped
    left join templates on templates.template_id = scoped.scope_id and scoped.scope = 'pipeline'
    group by scoped.company_id, scoped.scope, scoped.scope_id

)

select
    company_id,
    company_name,
    scope,
    scope_id,
    scope_name,
    window_start,
    as_of_date,
    open_deals,
    deals_won,
    deals_lost,
    cast(case when deals_won + deals_lost > 0 then 100.0 * deals_won / (deals_won + deals_lost) end
        as decimal(5, 2)) as win_rate,
    cast(case when deals_won > 0 then won_value / deals_won end as decimal(15, 2)) as average_deal_size,
    cast(case when deals_won > 0 then 1.0 * won_cycle_days / deals_won end as decimal(8, 2)) as average_cycle_days,
    -- open x (won / closed) x (won value / won) / (won cycle days / won), in one division
    cast(case when deals_won > 0 and won_cycle_days > 0
        then open_deals * won_value * deals_won / ((deals_won + deals_lost) * won_cycle_days)
    end as decimal(15, 2)) as velocity_per_day
from final
