{#-
  The real migrations define leads twice: lead_status (lead tracking system) and, later, status
  with construction-project columns. Whichever raw.leads has, this model has one shape:
  lead_status always, the project columns null where the source has none.
-#}
{%- set source_relation = source('builddesk', 'leads') -%}
{%- set columns = [] -%}
{%- if execute -%}
    {%- for c in adapter.get_columns_in_relation(source_relation) -%}{%- do columns.append(c.name | lower) -%}{%- endfor -%}
{%- endif -%}

with

source as (

    select * from {{ source_relation }}

),

renamed as (

    select
        id as lead_id,
        company_id,
        email,
        first_name,
        last_name,
        company_name,
        phone,
        job_title,
        lead_source,
        {% if 'lead_status' in columns and 'status' in columns -%}
        coalesce(lead_status, status) as lead_status,
        {%- elif 'status' in columns -%}
        status as lead_status,
        {%- else -%}
        lead_status,
        {%- endif %}
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
        {% if 'project_type' in columns %}project_type{% else %}cast(null as {{ dbt.type_string() }}) as project_type{% endif %},
        {% if 'estimated_budget' in columns %}estimated_budget{% else %}cast(null as decimal(15, 2)) as estimated_budget{% endif %},
        {% if 'project_timeline' in columns %}project_timeline{% else %}cast(null as {{ dbt.type_string() }}) as project_timeline{% endif %},
        {% if 'project_city' in columns %}project_city{% else %}cast(null as {{ dbt.type_string() }}) as project_city{% endif %},
        {% if 'project_state' in columns %}project_state{% else %}cast(null as {{ dbt.type_string() }}) as project_state{% endif %},
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
