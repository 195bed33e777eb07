{#-
  Movements between engagement segments: one row per company x as-of day x from-segment x to-segment with
  the leads and contacts that moved, read from the snapshot snap_engagement_segments (a version per segment a
  member was in; the day is the as-of day of the refresh that found the new segment). A member's first
  version moves from '(new)'. A member deleted from the CRM leaves its last segment without a movement row.
-#}

with

versions as (

    select
        member_key,
        company_id,
        segment,
        as_of_date,
        dbt_valid_from,
        dbt_valid_to,
        lag(segment) over (partition by member_key order by dbt_valid_from) as previous_segment
    from {{ ref('snap_engagement_segments') }}

),

moves as (

    select company_id, as_of_date, coalesce(previous_segment, '(new)') as from_segment, segment as to_segment
    from versions

),

final as (

    select
        moves.company_id,
        companies.name as company_name,
        moves.as_of_date,
        moves.from_segment,
        moves.to_segment,
        count(*) as members
    from moves
    left join {{ ref('stg_builddesk__companies') }} as companies on companies.company_id = moves.company_id
    group by moves.company_id, companies.name, moves.as_of_date, moves.from_segment, moves.to_segment

)

select * from final
