with

stages as (

    select * from {{ ref('stg_builddesk__pipeline_stages') }}
    where not is_deleted

),

companies as (

    select company_id, name as company_name from {{ ref('stg_builddesk__companies') }}

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
        companies.company_name,
        stages.name as stage_name,
        stages.stage_order,
        stages.probability_weight,
        stages.is_final_stage,
        stages.is_won_stage,
        stages.is_lost_stage,
        stages.expected_duration_days
    from stages
    left join templates on templates.template_id = stages.template_id
    left join companies on companies.company_id = stages.company_id

)

select * from final
