{{ config(
    materialized='incremental',
    unique_key=['activity_id', 'source_table'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
) }}

{#-
  One feed of everything that happened around leads and deals: lead web activity
  (lead_activities), sales activities on deals (deal_activities), CRM activities
  (crm_activities) and provider e-mail events (email_events, joined to the send and, by
  recipient address, to the lead). Types normalized to one vocabulary (activity_type), times in
  UTC. Rows deleted in the source stay, flagged is_deleted.

  Incremental: rows whose source row, or a row they take attributes from (lead, deal, send),
  changed since the last build minus var incremental_lookback_days are re-emitted and replace
  their previous version (delete+insert on activity_id + source_table).
-#}

with

leads as (

    select * from {{ ref('stg_builddesk__leads') }}

),

deals as (

    select * from {{ ref('stg_builddesk__deals') }}

),

lead_emails as (

    select lower(email) as email, lead_id, company_id, changed_at
    from leads
    where not is_deleted

),

lead_activity as (

    select
        cast(la.lead_activity_id as {{ dbt.type_string() }}) as activity_id,
        'lead_activities' as source_table,
        la.activity_type,
        la.activity_type as source_activity_type,
        la.created_at as occurred_at,
        leads.company_id,
        la.lead_id,
        cast(null as {{ dbt.type_string() }}) as contact_id,
        cast(null as {{ dbt.type_string() }}) as deal_id,
        cast(null as {{ dbt.type_string() }}) as rep_id,
        la.is_deleted,
        greatest(la.changed_at, coalesce(leads.changed_at, la.changed_at)) as changed_at
    from {{ ref('stg_builddesk__lead_activities') }} as la
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
        deals.lead_id,
        cast(coalesce(da.contact_id, deals.primary_contact_id, deals.contact_id) as {{ dbt.type_string() }}) as contact_id,
        cast(da.deal_id as {{ dbt.type_string() }}) as deal_id,
        cast(coalesce(da.assigned_to, da.created_by) as {{ dbt.type_string() }}) as rep_id,
        da.is_deleted,
        greatest(da.changed_at, coalesce(deals.changed_at, da.changed_at)) as changed_at
    from {{ ref('stg_builddesk__deal_activities') }} as da
    left join deals on deals.deal_id = da.deal_id

),

crm_activity as (

    select
        cast(ca.crm_activity_id as {{ dbt.type_string() }}) as activity_id,
        'crm_activities' as source_table,
        case ca.activity_type when 'email' then 'email_sent' else ca.activity_type end as activity_type,
        ca.activity_type as source_activity_type,
        ca.activity_date as occurred_at,
        ca.company_id,
        ca.lead_id,
        cast(null as {{ dbt.type_string() }}) as contact_id,
        cast(null as {{ dbt.type_string() }}) as deal_id,
        cast(ca.created_by as {{ dbt.type_string() }}) as rep_id,
        ca.is_deleted,
        ca.changed_at
    from {{ ref('stg_builddesk__crm_activities') }} as ca

),

email_event as (

    select
        ev.provider || ':' || ev.event_id as activity_id,
        'email_events' as source_table,
        'email_' || ev.event_type as activity_type,
        ev.provider_event_type as source_activity_type,
        ev.occurred_at,
        lead_emails.company_id,
        lead_emails.lead_id,
        cast(null as {{ dbt.type_string() }}) as contact_id,
        cast(null as {{ dbt.type_string() }}) as deal_id,
        cast(null as {{ dbt.type_string() }}) as rep_id,
        ev.is_deleted,
        greatest(ev.changed_at, coalesce(lead_emails.changed_at, ev.changed_at)) as changed_at
    from {{ ref('stg_email__events') }} as ev
    left join lead_emails on lead_emails.email = ev.recipient_email

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
        replace(replace(activity_type, 'email_opened', 'email_open'), 'email_clicked', 'email_click') as activity_type,
        source_activity_type,
        occurred_at,
        {{ utc_date('occurred_at') }} as occurred_date,
        company_id,
        cast(lead_id as {{ dbt.type_string() }}) as lead_id,
        contact_id,
        deal_id,
        rep_id,
        is_deleted,
        changed_at
    from unioned
    {% if is_incremental() %}
    where changed_at >= (
        select max(changed_at) - interval '{{ var("incremental_lookback_days") }} days' from {{ this }}
    )
    {% endif %}

)

select * from final
