with

source as (

    {{ contract_source('deal_stage_history') }}

),

renamed as (

    select
        id as stage_move_id,
        deal_id,
        from_stage_id,
        to_stage_id,
        moved_by,
        moved_at,
        notes,
        days_in_previous_stage,
        auto_moved,
        value_before,
        value_after,
        probability_before,
        probability_after,
        _batch_id as batch_id,
        _ingested_at as ingested_at,
        _deleted_at as deleted_at,
        _deleted_at is not null as is_deleted,
        {{ changed_at() }} as changed_at
    from source

)

select * from renamed
