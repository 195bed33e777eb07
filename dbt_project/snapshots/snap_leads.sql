{#- Every version of every lead seen by a refresh (status, owner and operational score over time). -#}
{% snapshot snap_leads %}

{{ config(
    unique_key='lead_id',
    strategy='timestamp',
    updated_at='updated_at',
    hard_deletes='invalidate',
) }}

select
    lead_id,
    company_id,
    lead_source,
    lead_status,
    priority,
    assigned_to,
    operational_lead_score,
    updated_at
from {{ ref('int_leads_with_tenant') }}
where not is_deleted

{% endsnapshot %}
