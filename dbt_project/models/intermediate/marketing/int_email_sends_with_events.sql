{#-
  One row per live e-mail send with what the providers' events say happened to it (the app's own
  counters on email_sends are not trusted). Events join sends on (email_provider, email_provider_id).
-#}

with

sends as (

    select * from {{ ref('stg_builddesk__email_sends') }}
    where not is_deleted

),

events as (

    select * from {{ ref('stg_email__events') }}
    where not is_deleted

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
        min(case when event_type = 'click' then occurred_at end) as first_clicked_at
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
        sends.click_count as app_click_count
    from sends
    left join per_send
        on per_send.provider = sends.email_provider
        and per_send.provider_message_id = sends.email_provider_id

)

select * from final
