{#- Contact attributes for slicing; personal data (e-mail, phones, names, addresses) left out. -#}

with

reps as (

    select rep_id, rep_name from {{ ref('dim_reps') }}

),

contacts as (

    select * from {{ ref('stg_builddesk__contacts') }}

),

final as (

    select
        contacts.contact_id,
        contacts.company_id,
        contact_type,
        relationship_status,
        preferred_contact_method,
        lead_source,
        job_title,
        department,
        state,
        country,
        contacts.assigned_to as rep_id,
        reps.rep_name,
        contacts.created_at,
        contacts.is_deleted,
        contacts.deleted_at
    from contacts
    left join reps on reps.rep_id = contacts.assigned_to

)

select * from final
