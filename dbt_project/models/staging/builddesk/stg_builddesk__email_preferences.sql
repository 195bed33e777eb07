with

source as (

    {{ contract_source('email_preferences') }}

),

renamed as (

    select
        user_id,
        marketing_emails,
        product_updates,
        newsletter,
        trial_nurture,
        billing_notifications,
        email_frequency,
        digest_enabled,
        digest_frequency,
        quiet_hours_enabled,
        quiet_hours_start,
        quiet_hours_end,
        timezone,
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
