{#-
  Speed to lead: one row per thing a lead did that asks for a rep (its creation, each demo request,
  each sales-contact request) and the first rep touch that followed it, as of the as-of day.

  A touch is what int_lead_touches lists: a CRM activity of the lead whose type is in var
  response_touch_types (call, e-mail, meeting, follow-up, site visit; a note is not a touch) at
  activity_date; a sales-contact request of the lead marked contacted (contacted_at); a demo of the lead
  taking place (scheduled_at of a demo request scheduled or completed: when it was booked is not
  recorded). The first touch at or after the trigger and before the end of the as-of day counts. Hours are wall-clock hours. within_sla: answered
  within var response_sla_hours; false when answered later or still unanswered past it; null while the
  SLA has not yet run out.
-#}

with

as_of as (

    select * from {{ ref('int_as_of') }}

),

leads as (

    select * from {{ ref('int_leads_with_tenant') }}
    where not is_deleted
        and created_at < (select as_of_end_utc from as_of)

),

demo_requests as (

    select * from {{ ref('stg_builddesk__demo_requests') }}
    where not is_deleted
        and created_at < (select as_of_end_utc from as_of)

),

contact_requests as (

    select * from {{ ref('stg_builddesk__sales_contact_requests') }}
    where not is_deleted
        and created_at < (select as_of_end_utc from as_of)

),

triggers as (

    select lead_id, 'lead_created' as trigger_type, lead_id as trigger_id, created_at as triggered_at,
        assigned_to as trigger_rep_id
    from leads
    union all
    select d.lead_id, 'demo_request', d.demo_request_id, d.created_at, d.assigned_sales_rep
    from demo_requests as d
    inner join leads on leads.lead_id = d.lead_id
    union all
    select c.lead_id, 'sales_contact_request', c.sales_contact_request_id, c.created_at, c.assigned_to
    from contact_requests as c
    inner join leads on leads.lead_id = c.lead_id

),

touches as (

    select * from {{ ref('int_lead_touches') }}

),

ranked as (

    select
        triggers.lead_id,
        triggers.trigger_type,
        triggers.trigger_id,
        triggers.triggered_at,
        triggers.trigger_rep_id,
        touches.touched_at,
        touches.touch_type,
        touches.touched_by,
        row_number() over (
            partition by triggers.trigger_type, triggers.trigger_id
            order by touches.touched_at, touches.touch_type
        ) as touch_rank
    from triggers
    left join touches
        on touches.lead_id = triggers.lead_id
        and touches.touched_at >= triggers.triggered_at

),

reps as (

    select rep_id, rep_name from {{ ref('dim_reps') }}

),

final as (

    select
        ranked.trigger_type,
        ranked.trigger_id,
        ranked.lead_id,
        leads.company_id,
        coalesce(ranked.trigger_rep_id, leads.assigned_to) as rep_id,
        reps.rep_name,
        ranked.triggered_at,
        ranked.touched_at as first_touch_at,
        ranked.touch_type as first_touch_type,
        ranked.touched_by as first_touch_by,
        {{ hours_between_2dp('ranked.triggered_at', 'ranked.touched_at') }} as response_hours,
        {{ var('response_sla_hours') }} as sla_hours,
        case
            when ranked.touched_at is not null
                then {{ micros_between('ranked.triggered_at', 'ranked.touched_at') }}
                    <= cast({{ var('response_sla_hours') }} as bigint) * 3600000000
            when {{ micros_between('ranked.triggered_at', 'as_of.as_of_end_utc') }}
                > cast({{ var('response_sla_hours') }} as bigint) * 3600000000
                then false
        end as within_sla,
        ranked.touched_at is null as is_unanswered
    from ranked
    cross join as_of
    inner join leads on leads.lead_id = ranked.lead_id
    left join reps on reps.rep_id = coalesce(ranked.trigger_rep_id, leads.assigned_to)
    where ranked.touch_rank = 1

)

select * from final
