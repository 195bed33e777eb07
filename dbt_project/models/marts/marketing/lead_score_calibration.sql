{#-
  Does a higher score mean more conversions? Every lead is judged by the score it had at the same age
  (lead_score_history's 'cutoff' point, var lead_score_calibration_days after creation), so a score is
  never read after the outcome it should predict. A lead counts when its outcome is known (its cutoff is
  at least var lead_score_outcome_days before the end of the as-of day) and it had no deal by its cutoff.
  It converted when its first deal was created within lead_score_outcome_days of the cutoff, and won when,
  besides, a deal of it was won by then. One row per score kind x band: rule_score and decayed_score cut at
  var lead_score_bands (band '[10, 25)' holds 10 <= score < 25; the last, '>= 100', is open), grade by its grades.
-#}

{%- set edges = var('lead_score_bands') -%}

with

as_of as (

    select * from {{ ref('int_as_of') }}

),

cutoff_scores as (

    select * from {{ ref('lead_score_history') }}
    where point = 'cutoff'

),

judged as (

    select
        cutoff_scores.lead_id,
        cutoff_scores.rule_score,
        cutoff_scores.decayed_score,
        cutoff_scores.grade,
        coalesce(
            journeys.deal_created_at <= {{ plus_days('cutoff_scores.scored_at', var('lead_score_outcome_days')) }},
            false
        ) as converted,
        coalesce(
            journeys.deal_created_at <= {{ plus_days('cutoff_scores.scored_at', var('lead_score_outcome_days')) }}
            and journeys.won_date <= {{ add_days(utc_date('cutoff_scores.scored_at'), var('lead_score_outcome_days') | int) }},
            false
        ) as won
    from cutoff_scores
    inner join {{ ref('int_lead_journeys') }} as journeys on journeys.lead_id = cutoff_scores.lead_id
    cross join as_of
    where {{ plus_days('cutoff_scores.scored_at', var('lead_score_outcome_days')) }} <= as_of.as_of_end_utc
        and (journeys.deal_created_at is null or journeys.deal_created_at > cutoff_scores.scored_at)

),

banded as (

    {% for kind in ['rule_score', 'decayed_score'] %}
    select
        '{{ kind }}' as score_kind,
        case
            {% for lo in edges | reverse %}
            when {{ kind }} >= {{ lo }} then {{ edges | length - loop.index }}
            {% endfor %}
            else -1
        end as band_order,
        {{ kind }} as score,
        converted,
        won
    from judged
    union all
    {% endfor %}
    select
        'grade',
        case grade when 'hot' then 2 when 'warm' then 1 else 0 end,
        decayed_score,
        converted,
        won
    from judged

),

bands as (

    {% for kind in ['rule_score', 'decayed_score'] %}
    {% for lo in edges %}
    select '{{ kind }}' as score_kind, {{ loop.index0 }} as band_order,
        '{% if loop.last %}>= {{ lo }}{% else %}[{{ lo }}, {{ edges[loop.index] }}){% endif %}' as band,
        cast({{ lo }} as decimal(12, 2)) as band_min,
        {% if loop.last %}cast(null as decimal(12, 2)){% else %}cast({{ edges[loop.index] }} as decimal(12, 2)){% endif %} as band_max
    union all
    {% endfor %}
    {% endfor %}
    select 'grade', 0, 'cold', cast(null as decimal(12, 2)), cast({{ var('lead_grade_warm') }} as decimal(12, 2))
    union all
    select 'grade', 1, 'warm', cast({{ var('lead_grade_warm') }} as decimal(12, 2)), cast({{ var('lead_grade_hot') }} as decimal(12, 2))
    union all
    select 'grade', 2, 'hot', cast({{ var('lead_grade_hot') }} as decimal(12, 2)), cast(null as decimal(12, 2))

),

per_band as (

    select
        score_kind,
        band_order,
        count(*) as leads,
        sum(case when converted then 1 else 0 end) as deals,
        sum(case when won then 1 else 0 end) as wins,
        {{ avg_decimal('score') }} as avg_score
    from banded
    group by score_kind, band_order

),

base as (

    select
        count(*) as leads,
        sum(case when converted then 1 else 0 end) as deals,
        sum(case when won then 1 else 0 end) as wins
    from judged

),

final as (

    select
        bands.score_kind,
        bands.band,
        bands.band_order,
        bands.band_min,
        bands.band_max,
        coalesce(per_band.leads, 0) as leads,
        coalesce(per_band.deals, 0) as deals,
        coalesce(per_band.wins, 0) as wins,
        per_band.avg_score,
        cast(100.0 * per_band.deals / nullif(per_band.leads, 0) as decimal(5, 2)) as deal_rate,
        cast(100.0 * per_band.wins / nullif(per_band.leads, 0) as decimal(5, 2)) as win_rate,
        cast(100.0 * base.deals / nullif(base.leads, 0) as decimal(5, 2)) as base_deal_rate,
        cast(100.0 * base.wins / nullif(base.leads, 0) as decimal(5, 2)) as base_win_rate,
        cast(round((1.0 * per_band.deals / nullif(per_band.leads, 0)) / nullif(1.0 * base.deals / nullif(base.leads, 0), 0), 2) as decimal(9, 2)) as deal_rate_lift,
        {{ var('lead_score_calibration_days') | int }} as scored_after_days,
        {{ var('lead_score_outcome_days') | int }} as outcome_days
    from bands
    left join per_band
        on per_band.score_kind = bands.score_kind
        and per_band.band_order = bands.band_order
    cross join base

)

select * from final
