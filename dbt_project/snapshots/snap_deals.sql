{#- Every version of every deal seen by a refresh (type-2 history; deleted deals closed off). -#}
{% snapshot snap_deals %}

{{ config(
    unique_key='deal_id',
    strategy='timestamp',
    updated_at='updated_at',
    hard_deletes='invalidate',
) }}

select
    deal_id,
    company_id,
    pipeline_template_id,
    current_stage_id,
    sales_rep_id,
    status,
    estimated_value,
    actual_value,
    expected_close_date,
    actual_close_date,
    updated_at
from {{ ref('stg_builddesk__deals') }}
where not is_deleted

{% endsnapshot %}
