{#-
  Follow-ups a rep owes as of the as-of day: one row per lead whose next_follow_up_date, or contact whose
  next_contact_date, is before the as-of day with no touch since. A lead is touched by what
  int_lead_touches lists (CRM activities of a touch type, a contact request marked contacted, a demo held)
  or by its own last_contact_date; a contact by its last_contact_date or a deal activity naming it. A lead
  already converted or lost owes nothing. "Since" is from the start of the follow-up day (UTC).
-#}

with

as_of as (

    select * from {{ ref('int_as_of') }}

),

reps as (

    select rep_id, rep_name from {{ ref('dim_reps') }}

),

leads as (

    select * from {{ ref('int_leads_with_tenant') }}
    where not is_deleted
        and created_at < (select as_of_end_utc from as_of)
        and next_follow_up_date is not null
        and next_follow_up_date < (select as_of_date from as_of)
        and coalesce(lead_status, '') not in ('converted', 'lost')

),

lead_last_touch as (

    select lead_id, max(touched_at) as last_touch_at
    from {{ ref('int_lead_touches') }}
    group by lead_id

),

contacts as (

    select * from {{ ref('stg_builddesk__contacts') }}
    where not is_deleted
        and created_at < (select as_of_end_utc from as_of)
        and next_contact_date is not null
        and next_contact_date < (select as_of_date from as_of)

),

contact_last_touch as (

    select contact_id, max(coalesce(completed_at, created_at)) as last_touch_at
    from {{ ref('stg_builddesk__deal_activities') }}
    where not is_deleted
        and contact_id is not null
        and coalesce(completed_at, created_at) < (select as_of_end_utc from as_of)
    group by contact_id

),

due as (

    select
        'lead' as record_type,
        leads.lead_id as record_id,
        leads.company_id,
        leads.assigned_to as rep_id,
        leads.next_follow_up_date as due_date,
        leads.last_contact_date,
        lead_last_touch.last_touch_at,
        leads.lead_status as status
    from leads
    left join lead_last_touch on lead_last_touch.lead_id = leads.lead_id
    where (lead_last_touch.last_touch_at is null
            or {{ utc_date('lead_last_touch.last_touch_at') }} < leads.next_follow_up_date)
        and (leads.last_contact_date is null or leads.last_contact_date < leads.next_follow_up_date)
    union all
    select
        'contact',
        contacts.contact_id,
        contacts.company_id,
        contacts.assigned_to,
        contacts.next_contact_date,
        contacts.last_contact_date,
        contact_last_touch.last_touch_at,
        contacts.relationship_status
    from contacts
    left join contact_last_touch on contact_last_touch.contact_id = contacts.contact_id
    where (contact_last_touch.last_touch_at is null
            or {{ utc_date('contact_last_touch.last_touch_at') }} < contacts.next_contact_date)
        and (contacts.last_contact_date is null or contacts.last_contact_date < contacts.next_contact_date)

),

final as (

    select
        due.record_type,
        due.record_id,
        due.company_id,
        due.rep_id,
        reps.rep_name,
        due.due_date,
        {{ date_diff_days('due.due_date', 'as_of.as_of_date') }} as days_overdue,
        due.last_contact_date,
        due.last_touch_at,
        due.status,
        as_of.as_of_date
    from due
    cross join as_of
    left join reps on reps.rep_id = due.rep_id

)

select * from final
