with

source as (

    {{ contract_source('companies') }}

),

renamed as (

    select
        id as company_id,
        name,
        industry,
        company_size,
        address,
        city,
        state,
        zip_code,
        phone,
        website,
        subscription_tier,
        subscription_status,
        trial_ends_at,
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
