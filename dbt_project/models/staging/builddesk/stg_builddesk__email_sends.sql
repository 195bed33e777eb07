with

source as (

    {{ contract_source('email_sends') }}

),

renamed as (

    select
        id as email_send_id,
        campaign_id,
        user_id,
        recipient_email,
        recipient_name,
        subject,
        from_email,
        email_provider,
        email_provider_id,
        email_provider_data,
        status,
        sent_at,
        delivered_at,
        opened_at,
        first_opened_at,
        last_opened_at,
        open_count,
        clicked_at,
        first_clicked_at,
        last_clicked_at,
        click_count,
        links_clicked,
        unsubscribed_at,
        bounced_at,
        bounce_type,
        bounce_reason,
        complained_at,
        error_message,
        error_code,
        retry_count,
        max_retries,
        next_retry_at,
        send_metadata,
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
