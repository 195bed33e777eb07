with

source as (

    {{ contract_source('lead_activities') }}

),

renamed as (

    select
        id as lead_activity_id,
        lead_id,
        activity_type,
        activity_data,
        page_url,
        ip_address,
        user_agent,
        country,
        city,
        created_at,
        _batch_id as batch_id,
        _ingested_at as ingested_at,
        _deleted_at as deleted_at,
        _deleted_at is not null as is_deleted,
        {{ changed_at() }} as changed_at
    from source

)

select * from renamed
