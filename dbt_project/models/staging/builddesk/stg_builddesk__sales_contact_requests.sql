with

source as (

    {{ contract_source('sales_contact_requests') }}

),

renamed as (

    select
        id as sales_contact_request_id,
        lead_id,
        email,
        first_name,
        last_name,
        company_name,
        phone,
        inquiry_type,
        message,
        estimated_budget,
        timeline,
        status,
        contacted_at,
        assigned_to,
        assigned_at,
        notes,
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
