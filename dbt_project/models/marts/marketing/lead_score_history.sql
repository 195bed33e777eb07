{#-
  Each lead's score at the points of its history that a judgement of the score needs, one row per lead x
  point: 'cutoff' (var lead_score_calibration_days after the lead's creation: the score every lead is
  judged by in lead_score_calibration), 'deal_created' (the instant its first deal was created: the score
  it had when it converted) and 'as_of' (the end of the as-of day: lead_scores' score). A point after the
  as-of day is not scored yet. The score is lead_scores' (macros decayed_weight, lead_grade) over the
  lead's live activities created before the point. Any other day: `crm-warehouse refresh --as-of D`
  builds lead_scores as of D. The 'as_of' rows are lead_scores' own (its live leads), not computed again:
  the same figures by construction, and every activity of every lead joined once less.
-#}

with

as_of as (

    select * from {{ ref('int_as_of') }}

),

journeys as (

    select * from {{ ref('int_lead_journeys') }}

),

points as (

    select lead_id, 'cutoff' as point,
        {{ plus_days('created_at', var('lead_score_calibration_days')) }} as scored_at
    from journeys
    union all
    select lead_id, 'deal_created', deal_created_at
    from journeys
    where deal_created_at is not null

),

scored_points as (

    select points.*
    from points
    cross join as_of
    where points.scored_at <= as_of.as_of_end_utc

),

activities as (

    select * from {{ ref('stg_builddesk__lead_activities') }}
    where not is_deleted

),

weights as (

    select * from {{ ref('lead_score_weights') }}

),

per_point as (

    select
        scored_points.lead_id,
        scored_points.point,
        count(*) as activities,
        sum(coalesce(weights.weight, 0)) as rule_score,
        sum({{ decayed_weight('coalesce(weights.weight, 0)', 'activities.created_at', 'scored_points.scored_at') }}) as decayed_score
    from scored_points
    inner join activities
        on activities.lead_id = scored_points.lead_id
        and activities.created_at < scored_points.scored_at
    left join weights on weights.activity_type = activities.activity_type
    group by scored_points.lead_id, scored_points.point

),

final as (

    select
        scored_points.lead_id,
        journeys.company_id,
        scored_points.point,
        scored_points.scored_at,
        coalesce(per_point.activities, 0) as activities,
        coalesce(per_point.rule_score, 0) as rule_score,
        {{ score_2dp('coalesce(per_point.decayed_score, 0)') }} as decayed_score,
        {{ lead_grade('coalesce(per_point.decayed_score, 0)') }} as grade
    from scored_points
    inner join journeys on journeys.lead_id = scored_points.lead_id
    left join per_point
        on per_point.lead_id = scored_points.lead_id
        and per_point.point = scored_points.point

    union all

    select
        lead_scores.lead_id,
        journeys.company_id,
        'as_of' as point,
        as_of.as_of_end_utc as scored_at,
        lead_scores.activities,
        lead_scores.rule_score,
        lead_scores.decayed_score,
        lead_scores.grade
    from {{ ref('lead_scores') }} as lead_scores
    inner join journeys on journeys.lead_id = lead_scores.lead_id
    cross join as_of

)

select * from final
