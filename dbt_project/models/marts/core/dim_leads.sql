{#- Lead attributes for slicing; personal data (e-mail, phone, names) left out. -#}

with

reps as (

    select rep_id, rep_name from {{ ref('dim_reps') }}

),

leads as (

    select * from {{ ref('int_leads_with_tenant') }}

),

final as (

    select
        leads.lead_id,
        leads.company_id,
        company_id_source,
        lead_source,
        lead_status,
        priority,
        interest_type,
        project_type,
        leads.assigned_to as rep_id,
        reps.rep_name,
        leads.lead_temperature,
        leads.decision_maker,
        leads.last_contact_date,
        leads.next_follow_up_date,
        requested_demo,
        requested_sales_contact,
        utm_source,
        utm_medium,
        utm_campaign,
        split_part(email, '@', 2) as email_domain,
        leads.created_at,
        {{ utc_date('leads.created_at') }} as created_date,
        leads.is_deleted,
        leads.deleted_at
    from leads
    left join reps on reps.rep_id = leads.assigned_to

)

select * from final
