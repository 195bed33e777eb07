{#-
  The operational pipeline_metrics table rebuilt from history: one row per company x pipeline
  template x period (daily, weekly from Monday, monthly, quarterly; metric_date = period start),
  from the company's first deal to the as-of day. Flow metrics count what happened inside the
  period; stock metrics (deals_active, pipeline values) are read from fct_deal_daily_snapshot at
  the period's last day (or the as-of day for the current period), with value and stage
  probability as they stood then.
-#}

{%- set periods = ['daily', 'weekly', 'monthly', 'quarterly'] -%}
{%- set grains = {'daily': 'day', 'weekly': 'week', 'monthly': 'month', 'quarterly': 'quarter'} -%}
{#- period length as (datepart, n): PostgreSQL has no '1 quarter' interval -#}
{%- set lengths = {'daily': ('day', 1), 'weekly': ('day', 7), 'monthly': ('month', 1), 'quarterly': ('month', 3)} -%}

with

as_of as (

    select * from {{ ref('int_as_of') }}

),

deals as (

    select * from {{ ref('fct_deals') }}
    where not is_deleted

),

snapshot as (

    select * from {{ ref('fct_deal_daily_snapshot') }}

),

transitions as (

    select * from {{ ref('fct_deal_stage_transitions') }}

),

templates as (

    select template_id, company_id from {{ ref('stg_builddesk__pipeline_templates') }}
    where not is_deleted

),

leads as (

    select lead_id, company_id, {{ utc_date('created_at') }} as created_date
    from {{ ref('stg_builddesk__leads') }}
    where not is_deleted

),

lead_deals as (

    select lead_id, template_id, min(created_date) as first_deal_date
    from deals
    where lead_id is not null
    group by lead_id, template_id

),

first_day as (

    select company_id, min(created_date) as first_date
    from deals
    group by company_id

),

days as (

    {{ day_series("(select min(first_date) from first_day)", "(select as_of_date from as_of)") }}

),

periods as (

    {% for p in periods %}
    select distinct
        '{{ p }}' as period_type,
        {{ period_start(grains[p], 'date_day') }} as metric_date
    from days
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

period_bounds as (

    select
        period_type,
        metric_date,
        case period_type
            {% for p in periods %}
            when '{{ p }}' then {{ add_days(dbt.dateadd(lengths[p][0], lengths[p][1], 'metric_date'), -1) }}
            {% endfor %}
        end as period_end
    from periods

),

grid as (

    select
        templates.company_id,
        templates.template_id,
        period_bounds.period_type,
        period_bounds.metric_date,
        period_bounds.period_end,
        case when period_bounds.period_end < as_of.as_of_date then period_bounds.period_end else as_of.as_of_date end as measured_on
    from templates
    inner join first_day on first_day.company_id = templates.company_id
    cross join period_bounds
    cross join as_of
    where period_bounds.period_end >= first_day.first_date

),

created as (

    select grid.company_id, grid.template_id, grid.period_type, grid.metric_date, count(*) as deals_created
    from grid
    inner join deals
        on deals.template_id = grid.template_id
        and deals.created_date between grid.metric_date and grid.period_end
    group by 1, 2, 3, 4

),

closed as (

    select
        grid.company_id, grid.template_id, grid.period_type, grid.metric_date,
        sum(case when deals.status = 'won' then 1 else 0 end) as deals_won,
        sum(case when deals.status = 'lost' then 1 else 0 end) as deals_lost,
        sum(case when deals.status = 'won' then coalesce(deals.actual_value, deals.estimated_value) else 0 end) as won_value,
        sum(case when deals.status = 'lost' then coalesce(deals.actual_value, deals.estimated_value) else 0 end) as lost_value,
        {{ avg_decimal('deals.cycle_days') }} as average_cycle_time
    from grid
    inner join deals
        on deals.template_id = grid.template_id
        and deals.status in ('won', 'lost')
        and deals.actual_close_date between grid.metric_date and grid.period_end
    group by 1, 2, 3, 4

),

open_at_end as (

    select
        grid.company_id, grid.template_id, grid.period_type, grid.metric_date,
        count(*) as deals_active,
        sum(snapshot.deal_value) as total_pipeline_value,
        sum(snapshot.weighted_value) as weighted_pipeline_value
    from grid
    inner join snapshot
        on snapshot.template_id = grid.template_id
        and snapshot.snapshot_date = grid.measured_on
        and snapshot.status = 'open'
    group by 1, 2, 3, 4

),

moves as (

    select
        grid.company_id, grid.template_id, grid.period_type, grid.metric_date,
        sum(case when transitions.direction = 'forward' then 1 else 0 end) as deals_moved_forward,
        sum(case when transitions.direction = 'backward' then 1 else 0 end) as deals_moved_backward
    from grid
    inner join transitions
        on transitions.template_id = grid.template_id
        and {{ utc_date('transitions.entered_at') }} between grid.metric_date and grid.period_end
    group by 1, 2, 3, 4

),

stage_exits as (

    select
        grid.company_id, grid.template_id, grid.period_type, grid.metric_date,
        transitions.stage_name,
        {{ avg_decimal('transitions.days_in_stage') }} as avg_days
    from grid
    inner join transitions
        on transitions.template_id = grid.template_id
        and transitions.exited_at is not null
        and {{ utc_date('transitions.exited_at') }} between grid.metric_date and grid.period_end
    group by 1, 2, 3, 4, 5

),

velocity as (

    select
        company_id, template_id, period_type, metric_date,
        {{ json_object_agg_text('stage_name', 'avg_days') }} as stages_velocity
    from stage_exits
    group by 1, 2, 3, 4

),

new_leads as (

    select
        grid.company_id, grid.template_id, grid.period_type, grid.metric_date,
        count(*) as new_leads,
        sum(case when lead_deals.lead_id is not null then 1 else 0 end) as new_leads_with_deal
    from grid
    inner join leads
        on leads.company_id = grid.company_id
        and leads.created_date between grid.metric_date and grid.period_end
    left join lead_deals
        on lead_deals.lead_id = leads.lead_id
        and lead_deals.template_id = grid.template_id
    group by 1, 2, 3, 4

),

final as (

    select
        grid.company_id,
        grid.template_id,
        grid.period_type,
        grid.metric_date,
        grid.period_end,
        grid.measured_on,
        coalesce(created.deals_created, 0) as deals_created,
        coalesce(closed.deals_won, 0) as deals_won,
        coalesce(closed.deals_lost, 0) as deals_lost,
        coalesce(open_at_end.deals_active, 0) as deals_active,
        cast(coalesce(open_at_end.total_pipeline_value, 0) as decimal(15, 2)) as total_pipeline_value,
        cast(coalesce(open_at_end.weighted_pipeline_value, 0) as decimal(15, 2)) as weighted_pipeline_value,
        cast(coalesce(closed.won_value, 0) as decimal(15, 2)) as won_value,
        cast(coalesce(closed.lost_value, 0) as decimal(15, 2)) as lost_value,
        cast(case when closed.deals_won > 0 then closed.won_value / closed.deals_won end as decimal(15, 2)) as average_deal_size,
        cast(closed.average_cycle_time as decimal(8, 2)) as average_cycle_time,
        cast(case
            when closed.deals_won + closed.deals_lost > 0
                then 100.0 * closed.deals_won / (closed.deals_won + closed.deals_lost)
        end as decimal(5, 2)) as win_rate,
        cast(case
            when new_leads.new_leads > 0 then 100.0 * new_leads.new_leads_with_deal / new_leads.new_leads
        end as decimal(5, 2)) as conversion_rate,
        coalesce(moves.deals_moved_forward, 0) as deals_moved_forward,
        coalesce(moves.deals_moved_backward, 0) as deals_moved_backward,
        coalesce(velocity.stages_velocity, '{}') as stages_velocity
    from grid
    left join created using (company_id, template_id, period_type, metric_date)
    left join closed using (company_id, template_id, period_type, metric_date)
    left join open_at_end using (company_id, template_id, period_type, metric_date)
    left join moves using (company_id, template_id, period_type, metric_date)
    left join velocity using (company_id, template_id, period_type, metric_date)
    left join new_leads using (company_id, template_id, period_type, metric_date)

)

select * from final
