{#-
  Every rep touch of a lead before the end of the as-of day: a CRM activity of the lead whose type is in
  var response_touch_types (a note is not a touch), a sales-contact request of the lead marked contacted
  (contacted_at), a demo of the lead taking place (scheduled_at of a scheduled or completed demo request:
  when it was booked is not recorded). Read by lead_response_times (the first touch after a request) and
  follow_ups_due (the last touch): one definition of a touch.
-#}

with

as_of as (

    select * from {{ ref('int_as_of') }}

),

final as (

    select lead_id, activity_date as touched_at, activity_type as touch_type, created_by as touched_by
    from {{ ref('stg_builddesk__crm_activities') }}
    where not is_deleted
        and lead_id is not null
        and activity_type in ({% for t in var('response_touch_types') %}'{{ t }}'{% if not loop.last %}, {% endif %}{% endfor %})
        and activity_date < (select as_of_end_utc from as_of)
    union all
    select lead_id, contacted_at, 'contacted', assigned_to
    from {{ ref('stg_builddesk__sales_contact_requests') }}
    where not is_deleted
        and lead_id is not null
        and contacted_at is not null
        and contacted_at < (select as_of_end_utc from as_of)
    union all
    select lead_id, scheduled_at, 'demo', assigned_sales_rep
    from {{ ref('stg_builddesk__demo_requests') }}
    where not is_deleted
        and lead_id is not null
        and status in ('scheduled', 'completed')
        and scheduled_at is not null
        and scheduled_at < (select as_of_end_utc from as_of)

)

select * from final
