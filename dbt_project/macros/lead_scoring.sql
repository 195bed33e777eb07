{#-
  The lead score, defined once for lead_scores (as of the as-of day) and lead_score_history (as of the
  points of a lead's history): an activity's seed weight, decayed by its age at the scoring instant with
  the half-life var lead_score_half_life_days; a grade cut at var lead_grade_hot / lead_grade_warm.
-#}

{#- In double precision on both targets: DuckDB's epoch() is a double already; PostgreSQL's extract(epoch)
    is numeric (since 14), and numeric power() with a fractional exponent took most of lead_scores' 19 s
    at the medium tier (10.2 s → 2.5 s for its query with the cast, the same scores). -#}
{% macro decayed_weight(weight, activity_at, scored_at) -%}
    {{ weight }} * power(
        0.5,
        greatest(cast({{ days_between(activity_at, scored_at) }} as double precision), 0) / {{ var('lead_score_half_life_days') }}
    )
{%- endmacro %}

{% macro lead_grade(decayed_score) -%}
    case
        when {{ decayed_score }} >= {{ var('lead_grade_hot') }} then 'hot'
        when {{ decayed_score }} >= {{ var('lead_grade_warm') }} then 'warm'
        else 'cold'
    end
{%- endmacro %}

{#- A score rounded as the marts show it (decimal(12, 2)). -#}
{% macro score_2dp(score) -%}
    {{ return(adapter.dispatch('score_2dp')(score)) }}
{%- endmacro %}
{% macro default__score_2dp(score) -%}
    cast(round({{ score }}, 2) as decimal(12, 2))
{%- endmacro %}
{#- PostgreSQL has no round(double precision, int): the score is made numeric first (15 significant digits). -#}
{% macro postgres__score_2dp(score) -%}
    cast(round(cast({{ score }} as numeric), 2) as decimal(12, 2))
{%- endmacro %}
