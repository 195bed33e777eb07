with

source as (

    {{ contract_source('contacts') }}

),

renamed as (

    select
        id as contact_id,
        company_id,
        first_name,
        last_name,
        email,
        phone,
        mobile_phone,
        job_title,
        department,
        company_name,
        address,
        city,
        state,
        zip_code,
        country,
        website,
        linkedin_profile,
        contact_type,
        relationship_status,
        preferred_contact_method,
        time_zone,
        birthday,
        anniversary,
        lead_source,
        last_contact_date,
        next_contact_date,
        assigned_to,
        notes,
        tags,
        custom_fields,
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
