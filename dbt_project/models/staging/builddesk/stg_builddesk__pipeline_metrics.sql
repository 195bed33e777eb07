with

source as (

    {{ contract_source('pipeline_metrics') }}

),

renamed as (

    select
        id as pipeline_metric_id,
        company_id,
        template_id,
        metric_date,
        period_type,
        deals_created,
        deals_won,
        deals_lost,
        deals_active,
        total_pipeline_value,
        weighted_pipeline_value,
        won_value,
        lost_value,
        average_deal_size,
        average_cycle_time,
        win_rate,
        conversion_rate,
        deals_moved_forward,
        deals_moved_backward,
        stages_velocity,
        created_at,
        _batch_id as batch_id,
        _ingested_at as ingested_at,
        _deleted_at as deleted_at,
        _deleted_at is not null as is_deleted,
        {{ changed_at() }} as changed_at
    from source

)

select * from renamed
