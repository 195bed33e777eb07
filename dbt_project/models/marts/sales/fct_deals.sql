{#-
  One row per deal (deleted ones kept, flagged). Derived values recomputed rather than trusted:
  weighted_value = estimated_value x the current stage's probability (0 once closed), cycle_days
  from creation to close (or to the as-of day while open).
-#}

with

deals as (

    select * from {{ ref('stg_builddesk__deals') }}

),

stages as (

    select * from {{ ref('dim_pipeline_stages') }}

),

visits as (

    select * from {{ ref('int_deal_stage_visits') }}

),

as_of as (

    select * from {{ ref('int_as_of') }}

),

last_open_visit as (

    select
        deal_id,
        stage_id as last_open_stage_id,
        stage_name as last_open_stage_name,
        row_number() over (partition by deal_id order by visit_number desc) as recency
    from visits
    where not coalesce(is_won_stage, false) and not coalesce(is_lost_stage, false)

),

visit_stats as (

    select
        deal_id,
        count(*) as stage_visits,
        sum(case when direction = 'backward' then 1 else 0 end) as backward_moves,
        max(entered_at) as last_stage_change_at
    from visits
    group by deal_id

),

final as (

    select
        deals.deal_id,
        deals.company_id,
        deals.pipeline_template_id as template_id,
        deals.lead_id,
        coalesce(deals.primary_contact_id, deals.contact_id) as contact_id,
        deals.sales_rep_id as rep_id,
        deals.account_manager_id,
        deals.name as deal_name,
        deals.deal_type,
        deals.source,
        deals.status,
        deals.priority,
        deals.risk_level,
        deals.current_stage_id,
        stages.stage_name as current_stage_name,
        stages.stage_order as current_stage_order,
        stages.probability_weight as current_stage_probability,
        last_open_visit.last_open_stage_id,
        last_open_visit.last_open_stage_name,
        deals.estimated_value,
        deals.actual_value,
        case when deals.status = 'won' then coalesce(deals.actual_value, deals.estimated_value) end as won_value,
        case
            when deals.status in ('won', 'lost') then 0
            else cast(round(deals.estimated_value * coalesce(stages.probability_weight, 0) / 100.0, 2) as decimal(15, 2))
        end as weighted_value,
        deals.weighted_value as operational_weighted_value,
        deals.status not in ('won', 'lost')
            and deals.weighted_value <> round(deals.estimated_value * coalesce(stages.probability_weight, 0) / 100.0, 2)
            as is_operational_weighted_value_stale,
        deals.created_at,
        {{ utc_date('deals.created_at') }} as created_date,
        deals.expected_close_date,
        deals.actual_close_date,
        case when deals.status in ('won', 'lost') then {{ period_start('quarter', 'deals.actual_close_date') }} end as close_quarter,
        {{ date_diff_days(utc_date('deals.created_at'), 'coalesce(deals.actual_close_date, as_of.as_of_date)') }} as cycle_days,
        deals.days_in_pipeline as operational_days_in_pipeline,
        coalesce(visit_stats.stage_visits, 0) as stage_visits,
        coalesce(visit_stats.backward_moves, 0) as backward_moves,
        visit_stats.last_stage_change_at,
        deals.won_reason,
        deals.lost_reason,
        deals.lost_to_competitor,
        {{ json_array_text('deals.competitors') }} as competitors,
        deals.updated_at,
        deals.is_deleted,
        deals.deleted_at
    from deals
    cross join as_of
    left join stages on stages.stage_id = deals.current_stage_id
    left join last_open_visit on last_open_visit.deal_id = deals.deal_id and last_open_visit.recency = 1
    left join visit_stats on visit_stats.deal_id = deals.deal_id

)

select * from final
