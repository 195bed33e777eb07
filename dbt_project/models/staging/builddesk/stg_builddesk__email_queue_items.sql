with

source as (

    {{ contract_source('email_queue') }}

),

renamed as (

    select
        id as queue_item_id,
        campaign_id,
        user_id,
        recipient_email,
        scheduled_for,
        priority,
        status,
        attempts,
        last_attempt_at,
        email_send_id,
        queue_metadata,
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
