with

stages as (

    select * from {{ ref('stg_builddesk__pipeline_stages') }}
    where not is_deleted

),

templates as (

    select * from {{ ref('stg_builddesk__pipeline_templates') }}

),

final as (

    select
        stages.stage_id,
        stages.template_id,
        templates.name as template_name,
        templates.deal_type as template_deal_type,
        stages.company_id,
        stages.name as stage_name,
        stages.stage_order,
        stages.probability_weight,
        stages.is_final_stage,
        stages.is_won_stage,
        stages.is_lost_stage,
        stages.expected_duration_days
    from stages
    left join templates on templates.template_id = stages.template_id

)

select * from final
