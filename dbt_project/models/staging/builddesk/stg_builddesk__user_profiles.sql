with

source as (

    {{ contract_source('user_profiles') }}

),

renamed as (

    select
        id as user_id,
        company_id,
        email,
        first_name,
        last_name,
        phone,
        role,
        is_active,
        hourly_rate,
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
