{#-
  One row: the day the modelled history ends (as_of_date, inclusive) and its end instant.
  var('as_of'), else the environment's CRM_AS_OF (refresh --as-of D, a Dagster partition), else
  the latest business time in the data, so that a replayed or simulated CRM is modelled up to its
  own "today".
-#}

{%- set as_of = var('as_of') or env_var('CRM_AS_OF', '') %}

-- depends_on: {{ ref('stg_builddesk__deals') }}
-- depends_on: {{ ref('stg_builddesk__deal_stage_history') }}
-- depends_on: {{ ref('stg_builddesk__leads') }}
-- depends_on: {{ ref('stg_builddesk__lead_activities') }}

with

{% if as_of %}

final as (

    select cast('{{ as_of }}' as date) as as_of_date

)

{% else %}

business_times as (

    select max(updated_at) as ts from {{ ref('stg_builddesk__deals') }}
    union all
    select max(moved_at) from {{ ref('stg_builddesk__deal_stage_history') }}
    union all
    select max(created_at) from {{ ref('stg_builddesk__leads') }}
    union all
    select max(created_at) from {{ ref('stg_builddesk__lead_activities') }}

),

final as (

    select {{ utc_date('max(ts)') }} as as_of_date
    from business_times

)

{% endif %}

select
    as_of_date,
    cast({{ add_days('as_of_date', 1) }} as timestamp) at time zone 'UTC' as as_of_end_utc
from final
