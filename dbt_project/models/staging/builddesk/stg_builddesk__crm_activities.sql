with

source as (

    {{ contract_source('crm_activities') }}

),

renamed as (

    select
        id as crm_activity_id,
        activity_type,
        activity_date,
        description,
        outcome,
        duration_minutes,
        lead_id,
        opportunity_id,
        created_by,
        company_id,
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
