with

source as (

    {{ contract_source('pipeline_stages') }}

),

renamed as (

    select
        id as stage_id,
        template_id,
        company_id,
        name,
        description,
        stage_order,
        color_code,
        probability_weight,
        is_final_stage,
        is_won_stage,
        is_lost_stage,
        auto_tasks,
        required_fields,
        expected_duration_days,
        conversion_rate,
        created_at,
        updated_at,
        _batch_id as batch_id,
        _ingested_at as ingested_at,
        _deleted_at as deleted_at,
        _deleted_at is not null as is_deleted,
        {{ changed_at() }} as changed_at
    from source

)

select * from renamed
