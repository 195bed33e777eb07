{#-
  One row per live contact: can a rep use it? Completeness of the fields in var contact_required_fields
  (phone: phone, else mobile_phone); validity (e-mail syntax, 7 to 15 digits in the phone, a hard bounce or
  a spam complaint in the provider events of a send to its address, an active unsubscribe of its
  address); duplicates in its tenant (other contacts or leads with the same address, case and spaces
  aside; other contacts with the same name at the same company name key); staleness (no touch in the
  activity feed, nor a last_contact_date, within var contact_stale_days of the as-of day). quality_score is
  100 minus var contact_quality_penalties for each reason (never below 0); quality_issues lists the reasons.
-#}

{%- set pen = var('contact_quality_penalties') -%}
{%- set fields = var('contact_required_fields') -%}

with

as_of as (

    select * from {{ ref('int_as_of') }}

),

contacts as (

    select
        *,
        nullif(trim(coalesce(phone, mobile_phone)), '') as phone_any,
        lower(trim(email)) as email_key
    from {{ ref('stg_builddesk__contacts') }}
    where not is_deleted
        and created_at < (select as_of_end_utc from as_of)

),

address_events as (

    select
        lower(trim(sends.recipient_email)) as email_key,
        max(case when events.is_bounced_hard then 1 else 0 end) as hard_bounced,
        max(case when events.is_complained then 1 else 0 end) as complained
    from {{ ref('int_email_sends_with_events') }} as events
    inner join {{ ref('stg_builddesk__email_sends') }} as sends on sends.email_send_id = events.email_send_id
    group by lower(trim(sends.recipient_email))

),

unsubscribed as (

    select distinct lower(trim(email)) as email_key
    from {{ ref('stg_builddesk__email_unsubscribes') }}
    where not is_deleted
        and coalesce(is_active, true)
        and resubscribed_at is null
        and unsubscribed_at < (select as_of_end_utc from as_of)

),

addresses as (

    select company_id, email_key, count(*) as records
    from (
        select company_id, email_key from contacts
        union all
        select company_id, lower(trim(email))
        from {{ ref('int_leads_with_tenant') }}
        where not is_deleted
            and created_at < (select as_of_end_utc from as_of)
    ) as records
    where email_key is not null and email_key <> ''
    group by company_id, email_key

),

names as (

    select
        company_id,
        lower(trim(coalesce(first_name, '') || ' ' || coalesce(last_name, ''))) as name_key,
        {{ company_name_key('company_name') }} as company_key,
        count(*) as records
    from contacts
    group by 1, 2, 3

),

touches as (

    select contact_id, max(occurred_at) as last_activity_at
    from {{ ref('fct_crm_activities') }}
    where not is_deleted
        and contact_id is not null
        and occurred_at < (select as_of_end_utc from as_of)
    group by contact_id

),

checked as (

    select
        contacts.contact_id,
        contacts.company_id,
        contacts.assigned_to as rep_id,
        contacts.job_title,
        {% for f in fields %}
        {% if f == 'phone' %}contacts.phone_any is null{% else %}nullif(trim(cast(contacts.{{ f }} as varchar)), '') is null{% endif %} as missing_{{ f }},
        {% endfor %}
        contacts.email_key is not null and not coalesce({{ regex_found('contacts.email_key', '^[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$') }}, false) as invalid_email,
        contacts.phone_any is not null
            and length(regexp_replace(contacts.phone_any, '[^0-9]', '', 'g')) not between 7 and 15 as invalid_phone,
        coalesce(address_events.hard_bounced, 0) = 1 as hard_bounced,
        coalesce(address_events.complained, 0) = 1 as complained,
        unsubscribed.email_key is not null as unsubscribed,
        coalesce(addresses.records, 1) - 1 as duplicate_email_records,
        case when names.name_key <> '' then names.records - 1 else 0 end as duplicate_name_records,
        greatest(
            touches.last_activity_at,
            -- a last_contact_date after the as-of day is not known on that day (a rebuilt past day)
            case when contacts.last_contact_date <= as_of.as_of_date
                then cast(contacts.last_contact_date as timestamp) at time zone 'UTC' end
        ) as last_touch_at,
        {{ is_decision_maker_title('contacts.job_title') }} as is_decision_maker,
        as_of.as_of_date
    from contacts
    cross join as_of
    left join address_events on address_events.email_key = contacts.email_key
    left join unsubscribed on unsubscribed.email_key = contacts.email_key
    left join addresses
        on addresses.email_key = contacts.email_key
        and addresses.company_id = contacts.company_id
    left join names
        on names.company_id = contacts.company_id
        and names.name_key = lower(trim(coalesce(contacts.first_name, '') || ' ' || coalesce(contacts.last_name, '')))
        and names.company_key is not distinct from {{ company_name_key('contacts.company_name') }}
    left join touches on touches.contact_id = cast(contacts.contact_id as varchar)  -- the feed's ids are text

),

scored as (

    select
        checked.*,
        {{ date_diff_days(utc_date('last_touch_at'), 'as_of_date') }} as days_since_last_touch,
        last_touch_at is null
            or {{ date_diff_days(utc_date('last_touch_at'), 'as_of_date') }} > {{ var('contact_stale_days') | int }} as is_stale
    from checked

),

final as (

    select
        scored.contact_id,
        scored.company_id,
        scored.rep_id,
        reps.rep_name,
        scored.job_title,
        scored.is_decision_maker,
        cast(100.0 * (0 {% for f in fields %} + case when not missing_{{ f }} then 1 else 0 end{% endfor %})
            / {{ fields | length }} as decimal(5, 2)) as completeness_pct,
        {% for f in fields %}
        missing_{{ f }},
        {% endfor %}
        invalid_email,
        invalid_phone,
        hard_bounced,
        complained,
        unsubscribed,
        duplicate_email_records,
        duplicate_name_records,
        last_touch_at,
        days_since_last_touch,
        is_stale,
        greatest(0, 100
            {% for f in fields %} - case when missing_{{ f }} then {{ pen.missing_field }} else 0 end{% endfor %}
            - case when invalid_email then {{ pen.invalid_email }} else 0 end
            - case when invalid_phone then {{ pen.invalid_phone }} else 0 end
            - case when hard_bounced then {{ pen.hard_bounce }} else 0 end
            - case when complained then {{ pen.complaint }} else 0 end
            - case when unsubscribed then {{ pen.unsubscribed }} else 0 end
            - case when duplicate_email_records > 0 then {{ pen.duplicate_email }} else 0 end
            - case when duplicate_name_records > 0 then {{ pen.duplicate_name }} else 0 end
            - case when is_stale then {{ pen.stale }} else 0 end
        ) as quality_score,
        nullif(concat_ws(', '
            {% for f in fields %}, case when missing_{{ f }} then 'missing_{{ f }}' end{% endfor %}
            , case when invalid_email then 'invalid_email' end
            , case when invalid_phone then 'invalid_phone' end
            , case when hard_bounced then 'hard_bounce' end
            , case when complained then 'complaint' end
            , case when unsubscribed then 'unsubscribed' end
            , case when duplicate_email_records > 0 then 'duplicate_email' end
            , case when duplicate_name_records > 0 then 'duplicate_name' end
            , case when is_stale then 'stale' end
        ), '') as quality_issues
    from scored
    left join {{ ref('dim_reps') }} as reps on reps.rep_id = scored.rep_id

)

select * from final
