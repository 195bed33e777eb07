{#-
  One row per deal that existed by the end of the as-of day (deleted deals kept, flagged), as it
  stood then: a deal closed after the as-of day is still open here, in the stage its history
  shows on that day. Derived values recomputed rather than trusted: weighted_value =
  estimated_value x the stage's probability (0 once closed), cycle_days from creation to close (or
  to the as-of day while open).
-#}

with

as_of_day as (

    select * from {{ ref('int_as_of') }}

),

source_deals as (

    select * from {{ ref('stg_builddesk__deals') }}
    where created_at < (select as_of_end_utc from as_of_day)

),

history_stage as (

    select
        deal_id,
        stage_id,
        row_number() over (partition by deal_id order by visit_number desc) as recency
    from {{ ref('int_deal_stage_visits') }}

),

deals as (

    select
        source_deals.*,
        coalesce(source_deals.actual_close_date > as_of_day.as_of_date, false) as is_closed_after_as_of,
        coalesce(history_stage.stage_id, source_deals.current_stage_id) as stage_as_of
    from source_deals
    cross join as_of_day
    left join history_stage on history_stage.deal_id = source_deals.deal_id and history_stage.recency = 1

),

stages as (

    select * from {{ ref('dim_pipeline_stages') }}

),

reps as (

    select rep_id, rep_name from {{ ref('dim_reps') }}

),

companies as (

    select company_id, name as company_name from {{ ref('stg_builddesk__companies') }}

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
        companies.company_name,
        deals.pipeline_template_id as template_id,
        deals.lead_id,
        coalesce(deals.primary_contact_id, deals.contact_id) as contact_id,
        deals.sales_rep_id as rep_id,
        reps.rep_name,
        deals.account_manager_id,
        deals.name as deal_name,
        deals.deal_type,
        deals.source,
        case when deals.is_closed_after_as_of then 'active' else deals.status end as status,
        deals.priority,
        deals.risk_level,
        deals.stage_as_of as current_stage_id,
        stages.stage_name as current_stage_name,
        stages.stage_order as current_stage_order,
        stages.probability_weight as current_stage_probability,
        last_open_visit.last_open_stage_id,
        last_open_visit.last_open_stage_name,
        deals.estimated_value,
        case when not deals.is_closed_after_as_of then deals.actual_value end as actual_value,
        case when deals.status = 'won' and not deals.is_closed_after_as_of
            then coalesce(deals.actual_value, deals.estimated_value) end as won_value,
        case
            when deals.status in ('won', 'lost') and not deals.is_closed_after_as_of then cast(0 as decimal(15, 2))
            else {{ weighted_value('deals.estimated_value', 'coalesce(stages.probability_weight, 0)') }}
        end as weighted_value,
        deals.weighted_value as operational_weighted_value,
        deals.status not in ('won', 'lost')
            and deals.weighted_value <> {{ weighted_value('deals.estimated_value', 'coalesce(stages.probability_weight, 0)') }}
            as is_operational_weighted_value_stale,
        deals.created_at,
        {{ utc_date('deals.created_at') }} as created_date,
        deals.expected_close_date,
        case when not deals.is_closed_after_as_of then deals.actual_close_date end as actual_close_date,
        case when deals.status in ('won', 'lost') and not deals.is_closed_after_as_of
            then {{ period_start('quarter', 'deals.actual_close_date') }} end as close_quarter,
        {{ date_diff_days(utc_date('deals.created_at'),
            'case when deals.is_closed_after_as_of then as_of.as_of_date else coalesce(deals.actual_close_date, as_of.as_of_date) end') }} as cycle_days,
        deals.days_in_pipeline as operational_days_in_pipeline,
        coalesce(visit_stats.stage_visits, 0) as stage_visits,
        coalesce(visit_stats.backward_moves, 0) as backward_moves,
        visit_stats.last_stage_change_at,
        case when not deals.is_closed_after_as_of then deals.won_reason end as won_reason,
        case when not deals.is_closed_after_as_of then deals.lost_reason end as lost_reason,
        case when not deals.is_closed_after_as_of then deals.lost_to_competitor end as lost_to_competitor,
        {{ json_array_list('deals.competitors') }} as competitors,
        deals.updated_at,
        deals.is_deleted,
        deals.deleted_at
    from deals
    cross join as_of
    left join stages on stages.stage_id = deals.stage_as_of
    left join last_open_visit on last_open_visit.deal_id = deals.deal_id and last_open_visit.recency = 1
    left join visit_stats on visit_stats.deal_id = deals.deal_id
    left join reps on reps.rep_id = deals.sales_rep_id
    left join companies on companies.company_id = deals.company_id

)

select * from final
