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

companies as (

    select company_id, name as company_name from {{ ref('stg_builddesk__companies') }}

),

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

    select template_id, company_id, name as template_name from {{ ref('stg_builddesk__pipeline_templates') }}
    where not is_deleted

),

leads as (

    select lead_id, company_id, {{ utc_date('created_at') }} as created_date
    from {{ ref('int_leads_with_tenant') }}
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

-- flow metrics are additive over days: aggregate per pipeline and day once, then roll the days up
-- into each period type by their period start (an equi-join, not a range join per period)
daily_created as (

    select template_id, created_date as day, count(*) as deals_created
    from deals
    group by 1, 2

),

daily_closed as (

    select
        template_id,
        actual_close_date as day,
        sum(case when status = 'won' then 1 else 0 end) as deals_won,
        sum(case when status = 'lost' then 1 else 0 end) as deals_lost,
        sum(case when status = 'won' then coalesce(actual_value, estimated_value) else 0 end) as won_value,
        sum(case when status = 'lost' then coalesce(actual_value, estimated_value) else 0 end) as lost_value,
        sum(cycle_days) as cycle_days_sum,
        count(*) as closed_count
    from deals
    where status in ('won', 'lost')
    group by 1, 2

),

daily_moves as (

    select
        template_id,
        {{ utc_date('entered_at') }} as day,
        sum(case when direction = 'forward' then 1 else 0 end) as deals_moved_forward,
        sum(case when direction = 'backward' then 1 else 0 end) as deals_moved_backward
    from transitions
    group by 1, 2

),

daily_exits as (

    select
        template_id,
        {{ utc_date('exited_at') }} as day,
        stage_name,
        sum(days_in_stage) as days_sum,
        count(*) as exits
    from transitions
    where exited_at is not null
    group by 1, 2, 3

),

daily_leads as (

    select
        templates.template_id,
        leads.created_date as day,
        count(*) as new_leads,
        sum(case when lead_deals.lead_id is not null then 1 else 0 end) as new_leads_with_deal
    from leads
    inner join templates on templates.company_id = leads.company_id
    left join lead_deals
        on lead_deals.lead_id = leads.lead_id
        and lead_deals.template_id = templates.template_id
    group by 1, 2

),

{% set rollups = {
    'created': ('daily_created', ['sum(deals_created) as deals_created']),
    'closed': ('daily_closed', ['sum(deals_won) as deals_won', 'sum(deals_lost) as deals_lost',
                                'sum(won_value) as won_value', 'sum(lost_value) as lost_value',
                                'sum(cycle_days_sum) as cycle_days_sum', 'sum(closed_count) as closed_count']),
    'moves': ('daily_moves', ['sum(deals_moved_forward) as deals_moved_forward',
                              'sum(deals_moved_backward) as deals_moved_backward']),
    'new_leads': ('daily_leads', ['sum(new_leads) as new_leads', 'sum(new_leads_with_deal) as new_leads_with_deal']),
} %}

{% for name, (daily, measures) in rollups.items() %}
{{ name }} as (

    {% for p in periods %}
    select
        template_id,
        '{{ p }}' as period_type,
        {{ period_start(grains[p], 'day') }} as metric_date,
        {{ measures | join(', ') }}
    from {{ daily }}
    where day <= (select as_of_date from as_of)
    group by 1, 2, 3
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

{% endfor %}

stage_exits as (

    {% for p in periods %}
    select
        template_id,
        '{{ p }}' as period_type,
        {{ period_start(grains[p], 'day') }} as metric_date,
        stage_name,
        round(cast(sum(days_sum) / sum(exits) as decimal(18, 6)), 2) as avg_days
    from daily_exits
    where day <= (select as_of_date from as_of)
    group by 1, 2, 3, 4
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

velocity as (

    select
        template_id, period_type, metric_date,
        {{ json_object_agg_text('stage_name', 'avg_days') }} as stages_velocity
    from stage_exits
    group by 1, 2, 3

),

open_at_end as (

    select
        grid.template_id, grid.period_type, grid.metric_date,
        count(*) as deals_active,
        sum(snapshot.deal_value) as total_pipeline_value,
        sum(snapshot.weighted_value) as weighted_pipeline_value
    from grid
    inner join snapshot
        on snapshot.template_id = grid.template_id
        and snapshot.snapshot_date = grid.measured_on
        and snapshot.status = 'open'
    group by 1, 2, 3

),

final as (

    select
        grid.company_id,
        companies.company_name,
        grid.template_id,
        templates.template_name,
        grid.period_type,
        grid.metric_date,
        grid.period_end,
        grid.measured_on,
        grid.measured_on < grid.period_end as is_partial_period,
        coalesce(created.deals_created, 0) as deals_created,
        coalesce(closed.deals_won, 0) as deals_won,
        coalesce(closed.deals_lost, 0) as deals_lost,
        coalesce(open_at_end.deals_active, 0) as deals_active,
        cast(coalesce(open_at_end.total_pipeline_value, 0) as decimal(15, 2)) as total_pipeline_value,
        cast(coalesce(open_at_end.weighted_pipeline_value, 0) as decimal(15, 2)) as weighted_pipeline_value,
        cast(coalesce(closed.won_value, 0) as decimal(15, 2)) as won_value,
        cast(coalesce(closed.lost_value, 0) as decimal(15, 2)) as lost_value,
        cast(case when closed.deals_won > 0 then closed.won_value / closed.deals_won end as decimal(15, 2)) as average_deal_size,
        cast(round(cast(1.0 * closed.cycle_days_sum / nullif(closed.closed_count, 0) as decimal(18, 6)), 2) as decimal(8, 2))
            as average_cycle_time,
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
    left join created using (template_id, period_type, metric_date)
    left join closed using (template_id, period_type, metric_date)
    left join open_at_end using (template_id, period_type, metric_date)
    left join moves using (template_id, period_type, metric_date)
    left join velocity using (template_id, period_type, metric_date)
    left join new_leads using (template_id, period_type, metric_date)
    left join companies on companies.company_id = grid.company_id
    left join templates on templates.template_id = grid.template_id

)

select * from final
