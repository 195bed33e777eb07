{#- indexes: PostgreSQL only (DuckDB's ART indexes would slow its bulk writes), for the keyed deletes of delete+insert and the high-water mark. -#}
{{ config(
    materialized='incremental',
    indexes=([{'columns': ['deal_id', 'snapshot_date']}, {'columns': ['changed_at']}] if target.type == 'postgres' else []),
    unique_key='deal_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    meta={'grain': ['deal_id', 'snapshot_date']},
    post_hook=[
        "{% if is_incremental() %}{{ incremental_delete(\"deal_id in (select deal_id from \" ~ ref('stg_builddesk__deals') ~ \" where is_deleted)\") }}{% endif %}",
        "{% if is_incremental() %}{{ incremental_delete(\"snapshot_date > (select as_of_date from \" ~ ref('int_as_of') ~ \")\") }}{% endif %}",
        "{{ wap_delta_finish() }}",
    ],
) }}

{#-
  One row per live deal per UTC day, from the day it was created to the day it closed (or the
  as-of day while open): the stage it stood in at the end of that day, its value and probability
  as recorded by that stage move, and the weighted value then.

  Incremental: a deal's rows are rebuilt whole (delete+insert on deal_id) when the deal or its
  stage history was loaded since the last build (minus var load_lookback_minutes), every open
  deal is rebuilt so it gains the new days, and so is every deal closed after the previous or
  the current as-of day (a rebuild of a past day with --as-of, and the run after it); closed,
  unchanged deals are left alone. Post-hooks drop the rows of deals deleted in the source and
  days after the as-of day. A full refresh gives the same rows.
-#}

with

as_of as (

    select * from {{ ref('int_as_of') }}

),

deals as (

    select * from {{ ref('stg_builddesk__deals') }}
    where not is_deleted

),

visits as (

    select * from {{ ref('int_deal_stage_visits') }}

),

deal_changes as (

    select
        deals.deal_id,
        max(greatest(deals.changed_at, coalesce(visits.changed_at, deals.changed_at))) as changed_at
    from deals
    left join visits on visits.deal_id = deals.deal_id
    group by deals.deal_id

),

selected_deals as (

    select
        deals.deal_id,
        deals.company_id,
        deals.pipeline_template_id as template_id,
        deals.sales_rep_id as rep_id,
        {{ utc_date('deals.created_at') }} as created_date,
        case when deals.status in ('won', 'lost') then deals.actual_close_date end as close_date,
        deal_changes.changed_at
    from deals
    inner join deal_changes on deal_changes.deal_id = deals.deal_id
    {% if is_incremental() %}
    cross join as_of
    where deals.status not in ('won', 'lost')
        or deal_changes.changed_at >= {{ load_high_water_mark() }}
        -- closed after the previous build's last day, or after this build's: its days change
        or deals.actual_close_date >= {{ add_days("least(as_of.as_of_date, (select max(snapshot_date) from " ~ incremental_state() ~ "))", "-" ~ var("incremental_lookback_days")) }}
    {% endif %}

),

spine as (

    {{ day_series("(select min(created_date) from selected_deals)", "(select as_of_date from as_of)") }}

),

deal_days as (

    select
        selected_deals.*,
        spine.date_day as snapshot_date
    from selected_deals
    inner join spine
        on spine.date_day >= selected_deals.created_date
        and spine.date_day <= coalesce(selected_deals.close_date, (select as_of_date from as_of))

),

visit_days as (

    select
        visits.*,
        {{ utc_date('visits.entered_at') }} as entered_date,
        {{ utc_date('visits.exited_at') }} as exited_date
    from visits

),

final as (

    select
        deal_days.deal_id,
        deal_days.snapshot_date,
        deal_days.company_id,
        deal_days.template_id,
        deal_days.rep_id,
        visit_days.stage_id,
        visit_days.stage_name,
        visit_days.stage_order,
        case
            when visit_days.is_won_stage then 'won'
            when visit_days.is_lost_stage then 'lost'
            else 'open'
        end as status,
        visit_days.value_at_entry as deal_value,
        visit_days.probability_at_entry as stage_probability,
        case
            when visit_days.is_won_stage or visit_days.is_lost_stage then cast(0 as decimal(15, 2))
            else {{ weighted_value('visit_days.value_at_entry', 'visit_days.probability_at_entry') }}
        end as weighted_value,
        {{ date_diff_days('deal_days.created_date', 'deal_days.snapshot_date') }} as days_since_created,
        deal_days.changed_at
    from deal_days
    left join visit_days
        on visit_days.deal_id = deal_days.deal_id
        and visit_days.entered_date <= deal_days.snapshot_date
        and (visit_days.exited_date is null or visit_days.exited_date > deal_days.snapshot_date)

)

select * from final
