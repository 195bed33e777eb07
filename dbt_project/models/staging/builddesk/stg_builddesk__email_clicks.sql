with

source as (

    {{ contract_source('email_clicks') }}

),

renamed as (

    select
        id as email_click_id,
        email_send_id,
        url,
        link_text,
        clicked_at,
        ip_address,
        user_agent,
        country,
        city,
        device_type,
        utm_source,
        utm_medium,
        utm_campaign,
        created_at,
        _batch_id as batch_id,
        _ingested_at as ingested_at,
        _deleted_at as deleted_at,
        _deleted_at is not null as is_deleted,
        {{ changed_at() }} as changed_at
    from source

)

select * from renamed
