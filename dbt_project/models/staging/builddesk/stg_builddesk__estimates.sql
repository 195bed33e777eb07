with

source as (

    {{ contract_source('estimates') }}

),

renamed as (

    select
        id as estimate_id,
        company_id,
        opportunity_id,
        estimate_number,
        title,
        total_amount,
        status,
        valid_until,
        created_by,
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
