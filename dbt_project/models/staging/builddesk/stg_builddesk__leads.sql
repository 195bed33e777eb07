{#-
  The real migrations define leads twice: lead_status (lead tracking system) and, later, status
  with construction-project columns; BuildDesk's live database has both columns. contract_source
  gives every one of them (a missing one null, or from its rename), so this model has one shape:
  lead_status is the later status where the source has it, else lead_status.
-#}
with

source as (

    {{ contract_source('leads') }}

),

renamed as (

    select
        id as lead_id,
        company_id as source_company_id,
        email,
        first_name,
        last_name,
        company_name,
        phone,
        job_title,
        lead_source,
        coalesce(status, lead_status) as lead_status,
        priority,
        lead_score as operational_lead_score,
        interest_type,
        requested_demo,
        requested_sales_contact,
        downloaded_resource,
        viewed_pricing,
        started_signup,
        assigned_to,
        converted_to_user_id,
        conversion_value,
        utm_source,
        utm_medium,
        utm_campaign,
        utm_content,
        utm_term,
        landing_page,
        referrer,
        project_type,
        estimated_budget,
        project_timeline,
        project_city,
        project_state,
        next_follow_up_date,
        last_contact_date,
        lead_temperature,
        decision_maker,
        notes,
        tags,
        first_seen_at,
        last_activity_at,
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
