{#-
  Engagement segments per company as of the as-of day: members (leads and contacts) of each segment, and
  how many entered it and left it in the 30 days ending on the as-of day (segment_movements; a member's first
  appearance, from '(new)', counts as entering).
-#}

with

as_of as (

    select * from {{ ref('int_as_of') }}

),

members as (

    select
        company_id,
        segment,
        min(segment_order) as segment_order,
        count(*) as members,
        sum(case when record_type = 'lead' then 1 else 0 end) as leads,
        sum(case when record_type = 'contact' then 1 else 0 end) as contacts,
        sum(case when fit = 'high' then 1 else 0 end) as high_fit
    from {{ ref('int_engagement_segments') }}
    group by company_id, segment

),

movements as (

    select * from {{ ref('segment_movements') }}
    where from_segment <> to_segment
        and as_of_date <= (select as_of_date from as_of)

),

flows as (

    select company_id, to_segment as segment, as_of_date, members as entered, 0 as left_segment from movements
    union all
    select company_id, from_segment, as_of_date, 0, members from movements

),

per_segment_flows as (

    select
        flows.company_id,
        flows.segment,
        sum(case when flows.as_of_date >= {{ add_days('as_of.as_of_date', -29) }} then entered else 0 end) as entered_30d,
        sum(case when flows.as_of_date >= {{ add_days('as_of.as_of_date', -29) }} then left_segment else 0 end) as left_30d
    from flows
    cross join as_of
    group by flows.company_id, flows.segment

),

final as (

    select
        members.company_id,
        companies.name as company_name,
        members.segment,
        members.segment_order,
        members.members,
        members.leads,
        members.contacts,
        members.high_fit,
        coalesce(per_segment_flows.entered_30d, 0) as entered_30d,
        coalesce(per_segment_flows.left_30d, 0) as left_30d,
        as_of.as_of_date
    from members
    cross join as_of
    left join per_segment_flows
        on per_segment_flows.company_id is not distinct from members.company_id
        and per_segment_flows.segment = members.segment
    left join {{ ref('stg_builddesk__companies') }} as companies on companies.company_id = members.company_id

)

select * from final
