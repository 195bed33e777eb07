{#- One row per closed (won or lost) live deal. -#}

with

deals as (

    select * from {{ ref('fct_deals') }}
    where status in ('won', 'lost') and not is_deleted

),

final as (

    select
        deal_id,
        company_id,
        company_name,
        status as outcome,
        won_reason,
        lost_reason,
        lost_to_competitor,
        competitors,
        last_open_stage_id,
        last_open_stage_name,
        cycle_days,
        coalesce(actual_value, estimated_value) as deal_value,
        deal_type,
        source,
        rep_id,
        rep_name,
        template_id,
        actual_close_date as close_date,
        close_quarter
    from deals

)

select * from final
