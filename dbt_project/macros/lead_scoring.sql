{#-
  The lead score, defined once for lead_scores (as of the as-of day) and lead_score_history (as of the
  points of a lead's history): an activity's seed weight, decayed by its age at the scoring instant with
  the half-life var lead_score_half_life_days; a grade cut at var lead_grade_hot / lead_grade_warm.
-#}

{% macro decayed_weight(weight, activity_at, scored_at) -%}
    {{ weight }} * power(
        0.5,
        greatest({{ days_between(activity_at, scored_at) }}, 0) / {{ var('lead_score_half_life_days') }}
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
    cast(round({{ score }}, 2) as decimal(12, 2))
{%- endmacro %}
