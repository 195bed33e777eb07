{#- One row per stage visit of a live deal (deal x stage x entered_at). -#}

with

companies as (

    select company_id, name as company_name from {{ ref('stg_builddesk__companies') }}

),

visits as (

    select * from {{ ref('int_deal_stage_visits') }}

),

as_of as (

    select * from {{ ref('int_as_of') }}

),

final as (

    select
        visits.deal_id,
        visits.stage_id,
        visits.entered_at,
        visits.exited_at,
        visits.company_id,
        companies.company_name,
        visits.stage_name,
        visits.stage_order,
        visits.template_id,
        visits.visit_number,
        visits.from_stage_id,
        visits.direction,
        visits.moved_by,
        visits.auto_moved,
        visits.is_current,
        round(cast({{ days_between('visits.entered_at', 'coalesce(visits.exited_at, as_of.as_of_end_utc)') }} as decimal(12, 4)), 4) as days_in_stage,
        visits.value_at_entry,
        visits.probability_at_entry
    from visits
    cross join as_of
    left join companies on companies.company_id = visits.company_id

)

select * from final
