with

source as (

    {{ contract_source('pipeline_templates') }}

),

renamed as (

    select
        id as template_id,
        company_id,
        name,
        description,
        deal_type,
        is_default,
        is_active,
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
