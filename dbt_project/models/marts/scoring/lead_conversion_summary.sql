{#-
  The learned conversion score per tenant and band of won probability: how many open leads, and how many
  wins and deals they should bring within the horizon (the sums of the probabilities). Reads the scores the
  dbt step's Python step wrote (source scores.lead_conversion_scores); empty when no model was trained.
-#}

{%- set bands = [0, 0.05, 0.1, 0.2, 0.4] -%}

with

scores as (

    select * from {{ source('scores', 'lead_conversion_scores') }}

),

banded as (

    select
        company_id,
        as_of_date,
        case
            {% for lo in bands | reverse %}
            when p_won >= {{ lo }} then {{ bands | length - loop.index }}
            {% endfor %}
        end as band_order,
        p_won,
        p_converted,
        features_complete,
        model_beats_rule_score
    from scores

),

final as (

    select
        banded.company_id,
        companies.name as company_name,
        band_order,
        case band_order
            {% for lo in bands %}
            when {{ loop.index0 }} then '{{ (lo * 100) | round | int }}%{% if not loop.last %}-{{ (bands[loop.index] * 100) | round | int }}%{% else %}+{% endif %}'
            {% endfor %}
        end as band,
        max(as_of_date) as as_of_date,
        count(*) as open_leads,
        sum(case when features_complete then 0 else 1 end) as provisional_leads,
        round(cast(avg(p_won) as decimal(18, 6)), 4) as avg_p_won,
        round(cast(sum(p_won) as decimal(18, 6)), 2) as expected_wins,
        round(cast(sum(p_converted) as decimal(18, 6)), 2) as expected_deals,
        bool_and(model_beats_rule_score) as model_beats_rule_score
    from banded
    left join {{ ref('stg_builddesk__companies') }} as companies on companies.company_id = banded.company_id
    group by banded.company_id, companies.name, band_order

)

select * from final
