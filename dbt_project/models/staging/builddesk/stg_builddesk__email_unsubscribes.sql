with

source as (

    {{ contract_source('email_unsubscribes') }}

),

renamed as (

    select
        id as unsubscribe_id,
        user_id,
        email,
        unsubscribe_type,
        reason,
        reason_detail,
        unsubscribed_from_email_id,
        unsubscribed_via,
        is_active,
        resubscribed_at,
        unsubscribed_at,
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
