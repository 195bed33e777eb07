with

source as (

    {{ contract_source('users') }}

),

renamed as (

    select
        id as user_id,
        email,
        phone,
        email_confirmed_at,
        last_sign_in_at,
        raw_app_meta_data,
        raw_user_meta_data,
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
