{#- indexes: PostgreSQL only (DuckDB's ART indexes would slow its bulk writes), for the keyed deletes of delete+insert and the high-water mark. -#}
{{ config(
    materialized='incremental',
    indexes=([{'columns': ['activity_id', 'source_table']}, {'columns': ['changed_at']}] if target.type == 'postgres' else []),
    unique_key=['activity_id', 'source_table'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    post_hook=["{{ wap_delta_finish() }}"],
) }}

{#-
  One feed of everything that happened around leads and deals: lead web activity
  (lead_activities), sales activities on deals (deal_activities), CRM activities
  (crm_activities) and provider e-mail events (email_events, attributed by recipient address to
  the earliest lead created with it). Types normalized to one vocabulary (activity_type), times
  in UTC. Rows deleted in the source stay, flagged is_deleted.

  Incremental: each source is read from its own high-water mark (rows loaded or flagged deleted
  since the last build, minus var load_lookback_minutes), so a day's refresh reads a day of
  rows, not the whole history; the rows replace their previous version (delete+insert on
  activity_id + source_table). What is taken from another table is what does not change: a
  lead's or deal's company, a deal's lead, the earliest lead of an address. A deal activity is
  also re-read when its deal changed (its contact may have).
-#}

{%- set incremental = is_incremental() -%}

with

leads as (

    select lead_id, company_id from {{ ref('int_leads_with_tenant') }}

),

deals as (

    select * from {{ ref('stg_builddesk__deals') }}

),

lead_by_email as (

    select email, lead_id, company_id
    from (
        select
            lower(email) as email,
            lead_id,
            company_id,
            row_number() over (partition by lower(email) order by created_at, lead_id) as rank_by_age
        from {{ ref('int_leads_with_tenant') }}
    ) as ranked
    where rank_by_age = 1

),

lead_activity_rows as (

    select * from {{ ref('stg_builddesk__lead_activities') }}
    {% if incremental %}where changed_at >= {{ load_high_water_mark() }}{% endif %}

),

email_event_rows as (

    select * from {{ ref('stg_email__events') }}
    {% if incremental %}where changed_at >= {{ load_high_water_mark() }}{% endif %}

),

lead_activity as (

    select
        cast(la.lead_activity_id as {{ dbt.type_string() }}) as activity_id,
        'lead_activities' as source_table,
        la.activity_type,
        la.activity_type as source_activity_type,
        la.created_at as occurred_at,
        leads.company_id,
        cast(la.lead_id as {{ dbt.type_string() }}) as lead_id,
        cast(null as {{ dbt.type_string() }}) as contact_id,
        cast(null as {{ dbt.type_string() }}) as deal_id,
        cast(null as {{ dbt.type_string() }}) as rep_id,
        la.is_deleted,
        la.changed_at
    from lead_activity_rows as la
    left join leads on leads.lead_id = la.lead_id

),

deal_activity as (

    select
        cast(da.deal_activity_id as {{ dbt.type_string() }}) as activity_id,
        'deal_activities' as source_table,
        case da.activity_type when 'email' then 'email_sent' else da.activity_type end as activity_type,
        da.activity_type as source_activity_type,
        coalesce(da.completed_at, da.created_at) as occurred_at,
        deals.company_id,
        cast(deals.lead_id as {{ dbt.type_string() }}) as lead_id,
        cast(coalesce(da.contact_id, deals.primary_contact_id, deals.contact_id) as {{ dbt.type_string() }}) as contact_id,
        cast(da.deal_id as {{ dbt.type_string() }}) as deal_id,
        cast(coalesce(da.assigned_to, da.created_by) as {{ dbt.type_string() }}) as rep_id,
        da.is_deleted,
        greatest(da.changed_at, coalesce(deals.changed_at, da.changed_at)) as changed_at
    from {{ ref('stg_builddesk__deal_activities') }} as da
    left join deals on deals.deal_id = da.deal_id
    {% if incremental %}
    where da.changed_at >= {{ load_high_water_mark() }} or deals.changed_at >= {{ load_high_water_mark() }}
    {% endif %}

),

crm_activity as (

    select
        cast(ca.crm_activity_id as {{ dbt.type_string() }}) as activity_id,
        'crm_activities' as source_table,
        case ca.activity_type when 'email' then 'email_sent' else ca.activity_type end as activity_type,
        ca.activity_type as source_activity_type,
        ca.activity_date as occurred_at,
        ca.company_id,
        cast(ca.lead_id as {{ dbt.type_string() }}) as lead_id,
        cast(null as {{ dbt.type_string() }}) as contact_id,
        cast(null as {{ dbt.type_string() }}) as deal_id,
        cast(ca.created_by as {{ dbt.type_string() }}) as rep_id,
        ca.is_deleted,
        ca.changed_at
    from {{ ref('stg_builddesk__crm_activities') }} as ca
    {% if incremental %}where ca.changed_at >= {{ load_high_water_mark() }}{% endif %}

),

email_event as (

    select
        ev.provider || ':' || ev.event_id as activity_id,
        'email_events' as source_table,
        'email_' || ev.event_type as activity_type,
        ev.provider_event_type as source_activity_type,
        ev.occurred_at,
        lead_by_email.company_id,
        cast(lead_by_email.lead_id as {{ dbt.type_string() }}) as lead_id,
        cast(null as {{ dbt.type_string() }}) as contact_id,
        cast(null as {{ dbt.type_string() }}) as deal_id,
        cast(null as {{ dbt.type_string() }}) as rep_id,
        ev.is_deleted,
        ev.changed_at
    from email_event_rows as ev
    left join lead_by_email on lead_by_email.email = ev.recipient_email

),

unioned as (

    select * from lead_activity
    union all
    select * from deal_activity
    union all
    select * from crm_activity
    union all
    select * from email_event

),

final as (

    select
        activity_id,
        source_table,
        -- one spelling for e-mail engagement whatever the source wrote (the trigger's email_opened)
        replace(replace(activity_type, 'email_opened', 'email_open'), 'email_clicked', 'email_click') as activity_type,
        source_activity_type,
        occurred_at,
        {{ utc_date('occurred_at') }} as occurred_date,
        company_id,
        lead_id,
        contact_id,
        deal_id,
        rep_id,
        is_deleted,
        changed_at
    from unioned

)

select * from final
