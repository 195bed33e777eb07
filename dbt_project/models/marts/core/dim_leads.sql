{#- Lead attributes for slicing; personal data (e-mail, phone, names) left out. -#}

with

leads as (

    select * from {{ ref('int_leads_with_tenant') }}

),

final as (

    select
        lead_id,
        company_id,
        company_id_source,
        lead_source,
        lead_status,
        priority,
        interest_type,
        project_type,
        assigned_to as rep_id,
        requested_demo,
        requested_sales_contact,
        utm_source,
        utm_medium,
        utm_campaign,
        split_part(email, '@', 2) as email_domain,
        created_at,
        {{ utc_date('created_at') }} as created_date,
        is_deleted,
        deleted_at
    from leads

)

select * from final
