{#-
  Which touches earned the won revenue: one row per won deal x touch of its lead, with three credit
  models over the lead's touches up to the deal's creation (in time order, ties by touch_id):
  first-touch (all of won_value to the first), last-touch (all to the last) and linear (won_value split
  evenly in cents, the cents left over going one each to the earliest touches). Each model's credit sums
  exactly to the deal's won_value, so to the won revenue. A lead's touches:
    - lead_created: the lead's arrival, with its UTM fields; without a UTM source, its referrer
      (medium 'referral'), else its lead_source (medium '(none)'); always a touch, whatever its time;
    - page_visit: a live lead activity whose page_url carries utm_source (its utm_* query parameters);
    - email_click activity: a live email_click lead activity (medium and source 'email', campaign from its
      activity_data);
    - email_click: a click recorded by the provider (email_clicks) on a send to the lead's e-mail address
      (case-insensitive), campaign by the send's campaign name.
  A won deal with no lead (or a lead no longer live) gets one 'unattributed' row holding all its credit.
-#}

with

won_deals as (

    select deal_id, company_id, company_name, lead_id, created_at, actual_close_date, won_value
    from {{ ref('fct_deals') }}
    where not is_deleted and status = 'won'

),

leads as (

    select lead_id, email, created_at, utm_source, utm_medium, utm_campaign, referrer, lead_source
    from {{ ref('int_leads_with_tenant') }}
    where not is_deleted

),

lead_touches as (

    select
        lead_id,
        'lead_created' as touch_type,
        'lead:' || cast(lead_id as varchar) as touch_id,
        created_at as touched_at,
        coalesce(utm_source, referrer, lead_source, 'unknown') as touch_source,
        case
            when utm_source is not null then coalesce(utm_medium, '(none)')
            when referrer is not null then 'referral'
            else '(none)'
        end as touch_medium,
        case when utm_source is not null then coalesce(utm_campaign, '(none)') else '(none)' end as touch_campaign
    from leads

),

activity_touches as (

    select
        lead_id,
        case when activity_type = 'email_click' then 'email_click_activity' else 'page_visit' end as touch_type,
        'activity:' || cast(lead_activity_id as varchar) as touch_id,
        created_at as touched_at,
        case when activity_type = 'email_click' then 'email'
            else {{ url_param('page_url', 'utm_source') }} end as touch_source,
        case when activity_type = 'email_click' then 'email'
            else coalesce({{ url_param('page_url', 'utm_medium') }}, '(none)') end as touch_medium,
        coalesce(
            case when activity_type = 'email_click' then {{ json_text('activity_data', 'campaign') }}
                else {{ url_param('page_url', 'utm_campaign') }} end,
            '(none)'
        ) as touch_campaign
    from {{ ref('stg_builddesk__lead_activities') }}
    where not is_deleted
        and (activity_type = 'email_click' or {{ url_param('page_url', 'utm_source') }} is not null)

),

click_touches as (

    select
        leads.lead_id,
        'email_click' as touch_type,
        'click:' || cast(clicks.email_click_id as varchar) as touch_id,
        clicks.clicked_at as touched_at,
        coalesce(clicks.utm_source, 'email') as touch_source,
        coalesce(clicks.utm_medium, 'email') as touch_medium,
        coalesce(clicks.utm_campaign, campaigns.campaign_name, '(none)') as touch_campaign
    from {{ ref('stg_builddesk__email_clicks') }} as clicks
    inner join {{ ref('stg_builddesk__email_sends') }} as sends on sends.email_send_id = clicks.email_send_id
    left join {{ ref('stg_builddesk__email_campaigns') }} as campaigns on campaigns.campaign_id = sends.campaign_id
    inner join leads on lower(leads.email) = lower(sends.recipient_email)
    where not clicks.is_deleted and not sends.is_deleted and clicks.clicked_at is not null

),

touches as (

    select * from lead_touches
    union all
    select * from activity_touches
    union all
    select * from click_touches

),

deal_touches as (

    select
        won_deals.deal_id,
        touches.touch_id,
        touches.touch_type,
        touches.touched_at,
        touches.touch_source,
        touches.touch_medium,
        touches.touch_campaign
    from won_deals
    inner join touches
        on touches.lead_id = won_deals.lead_id
        and (touches.touch_type = 'lead_created' or touches.touched_at <= won_deals.created_at)

),

unattributed as (

    select
        won_deals.deal_id,
        'none:' || cast(won_deals.deal_id as varchar) as touch_id,
        'unattributed' as touch_type,
        cast(null as timestamp with time zone) as touched_at,
        'unattributed' as touch_source,
        'unattributed' as touch_medium,
        'unattributed' as touch_campaign
    from won_deals
    where not exists (select 1 from deal_touches where deal_touches.deal_id = won_deals.deal_id)

),

all_touches as (

    select * from deal_touches
    union all
    select * from unattributed

),

positioned as (

    select
        all_touches.*,
        row_number() over (partition by deal_id order by touched_at, touch_id) as touch_position,
        count(*) over (partition by deal_id) as touches
    from all_touches

),

final as (

    select
        won_deals.deal_id,
        won_deals.company_id,
        won_deals.company_name,
        won_deals.lead_id,
        won_deals.actual_close_date as won_date,
        won_deals.won_value,
        positioned.touch_id,
        positioned.touch_type,
        positioned.touched_at,
        positioned.touch_position,
        positioned.touches,
        positioned.touch_source,
        positioned.touch_medium,
        positioned.touch_campaign,
        case when positioned.touch_position = 1 then won_deals.won_value else 0 end as first_touch_credit,
        case when positioned.touch_position = positioned.touches then won_deals.won_value else 0 end as last_touch_credit,
        cast(
            cast(
                {{ int_div('cast(round(won_deals.won_value * 100) as bigint)', 'positioned.touches') }}
                + case when positioned.touch_position
                    <= cast(round(won_deals.won_value * 100) as bigint) % positioned.touches then 1 else 0 end
                as decimal(18, 0)
            ) * 0.01 as decimal(15, 2)
        ) as linear_credit
    from positioned
    inner join won_deals on won_deals.deal_id = positioned.deal_id

)

select * from final
