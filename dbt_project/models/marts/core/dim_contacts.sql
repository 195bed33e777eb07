{#- Contact attributes for slicing; personal data (e-mail, phones, names, addresses) left out. -#}

with

contacts as (

    select * from {{ ref('stg_builddesk__contacts') }}

),

final as (

    select
        contact_id,
        company_id,
        contact_type,
        relationship_status,
        preferred_contact_method,
        lead_source,
        job_title,
        department,
        state,
        country,
        assigned_to as rep_id,
        created_at,
        is_deleted,
        deleted_at
    from contacts

)

select * from final
