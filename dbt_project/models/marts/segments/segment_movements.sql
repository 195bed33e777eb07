{#-
  Movements between engagement segments: one row per company x as-of day x from-segment x to-segment with
  the leads and contacts that moved, read from the snapshot snap_engagement_segments (a version per segment a
  member was in; the day is the as-of day of the refresh that found the new segment). A member's first
  version moves from '(new)'. A member deleted from the CRM moves from its last segment to '(removed)' (the
  snapshot invalidates its last version: hard_deletes='invalidate'), dated by the as-of day of the refresh
  that found it gone (the day as a date of that snapshot run when no other member changed in it).
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
        lag(segment) over (partition by member_key order by dbt_valid_from) as previous_segment,
        lead(segment) over (partition by member_key order by dbt_valid_from) as next_segment
    from {{ ref('snap_engagement_segments') }}

),

snapshot_runs as (

    select dbt_valid_from, max(as_of_date) as as_of_date
    from versions
    group by dbt_valid_from

),

moves as (

    select company_id, as_of_date, coalesce(previous_segment, '(new)') as from_segment, segment as to_segment
    from versions
    union all
    -- a member gone from the CRM: its last version closed with no version after it
    select
        versions.company_id,
        coalesce(snapshot_runs.as_of_date, cast(versions.dbt_valid_to as date)),
        versions.segment,
        '(removed)'
    from versions
    left join snapshot_runs on snapshot_runs.dbt_valid_from = versions.dbt_valid_to
    where versions.dbt_valid_to is not null and versions.next_segment is null

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
