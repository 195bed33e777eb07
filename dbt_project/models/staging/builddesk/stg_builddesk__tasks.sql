with

source as (

    {{ contract_source('tasks') }}

),

renamed as (

    select
        id as task_id,
        company_id,
        title,
        description,
        status,
        priority,
        due_date,
        completed_at,
        assigned_to,
        created_by,
        deal_id,
        opportunity_id,
        contact_id,
        lead_id,
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
