{#- indexes: PostgreSQL only (DuckDB's ART indexes would slow its bulk writes), for the keyed deletes of delete+insert and the high-water mark. -#}
{{ config(
    materialized='incremental',
    indexes=([{'columns': ['email_send_id']}, {'columns': ['changed_at']}] if target.type == 'postgres' else []),
    unique_key='email_send_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    post_hook=[
        "{% if is_incremental() %}{{ incremental_delete(\"email_send_id in (select email_send_id from \" ~ ref('stg_builddesk__email_sends') ~ \" where is_deleted)\") }}{% endif %}",
        "{{ wap_delta_finish() }}",
    ],
) }}

{#-
  One row per live e-mail send with what the providers' events say happened to it (the app's own
  counters on email_sends are not trusted). Events join sends on (email_provider, email_provider_id).

  Incremental: a send's row is rebuilt whole (delete+insert on email_send_id) when the send, or any
  event naming its provider message, was loaded or flagged deleted since the last build (minus var
  load_lookback_minutes); a post-hook drops the rows of sends deleted in the source. The other sends'
  rows are left alone: nothing else goes into them. A full refresh gives the same rows.
-#}

{%- set incremental = is_incremental() -%}

with

{% if incremental %}
changed_messages as (

    select distinct provider, provider_message_id
    from {{ ref('stg_email__events') }}
    where changed_at >= {{ load_high_water_mark() }}
        and provider_message_id is not null

),

rebuilt as (

    select email_send_id
    from {{ ref('stg_builddesk__email_sends') }}
    where changed_at >= {{ load_high_water_mark() }}
    union
    select all_sends.email_send_id
    from {{ ref('stg_builddesk__email_sends') }} as all_sends
    inner join changed_messages
        on changed_messages.provider = all_sends.email_provider
        and changed_messages.provider_message_id = all_sends.email_provider_id

),
{% endif %}

sends as (

    select * from {{ ref('stg_builddesk__email_sends') }}
    where not is_deleted
    {% if incremental %}and email_send_id in (select email_send_id from rebuilt){% endif %}

),

events as (

    select events.*
    from {{ ref('stg_email__events') }} as events
    {% if incremental %}
    inner join (select distinct email_provider, email_provider_id from sends) as rebuilt_messages
        on rebuilt_messages.email_provider = events.provider
        and rebuilt_messages.email_provider_id = events.provider_message_id
    {% endif %}
    where not events.is_deleted

),

per_send as (

    select
        provider,
        provider_message_id,
        max(case when event_type = 'delivered' then 1 else 0 end) as is_delivered,
        max(case when event_type = 'bounce' and bounce_class = 'hard' then 1 else 0 end) as is_bounced_hard,
        max(case when event_type = 'bounce' and coalesce(bounce_class, 'soft') <> 'hard' then 1 else 0 end) as is_bounced_soft,
        max(case when event_type = 'open' then 1 else 0 end) as is_opened,
        max(case when event_type = 'open' and not is_machine_open then 1 else 0 end) as is_opened_excl_machine,
        max(case when event_type = 'click' then 1 else 0 end) as is_clicked,
        max(case when event_type = 'unsubscribe' then 1 else 0 end) as is_unsubscribed,
        max(case when event_type = 'spam_report' then 1 else 0 end) as is_complained,
        sum(case when event_type = 'open' then 1 else 0 end) as opens,
        sum(case when event_type = 'click' then 1 else 0 end) as clicks,
        min(case when event_type = 'open' then occurred_at end) as first_opened_at,
        min(case when event_type = 'click' then occurred_at end) as first_clicked_at,
        max(changed_at) as changed_at
    from events
    where provider_message_id is not null
    group by provider, provider_message_id

),

final as (

    select
        sends.email_send_id,
        sends.campaign_id,
        sends.user_id,
        sends.email_provider,
        sends.email_provider_id,
        sends.sent_at,
        sends.sent_at is not null as is_sent,
        coalesce(per_send.is_delivered, 0) = 1 as is_delivered,
        coalesce(per_send.is_bounced_hard, 0) = 1 as is_bounced_hard,
        coalesce(per_send.is_bounced_soft, 0) = 1 and coalesce(per_send.is_bounced_hard, 0) = 0 as is_bounced_soft,
        coalesce(per_send.is_opened, 0) = 1 as is_opened,
        coalesce(per_send.is_opened_excl_machine, 0) = 1 as is_opened_excl_machine,
        coalesce(per_send.is_clicked, 0) = 1 as is_clicked,
        coalesce(per_send.is_unsubscribed, 0) = 1 as is_unsubscribed,
        coalesce(per_send.is_complained, 0) = 1 as is_complained,
        coalesce(per_send.opens, 0) as opens,
        coalesce(per_send.clicks, 0) as clicks,
        per_send.first_opened_at,
        per_send.first_clicked_at,
        sends.open_count as app_open_count,
        sends.click_count as app_click_count,
        greatest(sends.changed_at, coalesce(per_send.changed_at, sends.changed_at)) as changed_at
    from sends
    left join per_send
        on per_send.provider = sends.email_provider
        and per_send.provider_message_id = sends.email_provider_id

)

select * from final
