with

source as (

    {{ contract_source('deal_activities') }}

),

renamed as (

    select
        id as deal_activity_id,
        deal_id,
        activity_type,
        subject,
        description,
        outcome,
        next_action,
        due_date,
        completed_at,
        duration_minutes,
        assigned_to,
        created_by,
        contact_id,
        document_id,
        metadata,
        is_completed,
        is_automated,
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
