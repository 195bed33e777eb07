{#-
  One row per campaign x A/B variant. Counts are of sends (unique): a send counts once as opened
  however many opens it had; opens are also counted without privacy-proxy (machine) opens. Rates
  are over delivered sends. A/B variants of one test are the campaigns whose names differ only by
  the " (X)" suffix; variant A is the control. Lift = (variant rate - control rate) / control rate;
  the p-value is the two-sided two-proportion z-test (pooled) of that rate against the control.
-#}

with

campaigns as (

    select * from {{ ref('stg_builddesk__email_campaigns') }}

),

sends as (

    select * from {{ ref('int_email_sends_with_events') }}
    where is_sent

),

per_campaign as (

    select
        campaigns.campaign_id,
        campaigns.campaign_name,
        campaigns.campaign_type,
        case when campaigns.ab_test_enabled then campaigns.ab_test_variant else 'none' end as variant,
        case when campaigns.ab_test_enabled
            then regexp_replace(campaigns.campaign_name, ' \([A-Z]\)$', '') end as ab_test_name,
        count(sends.email_send_id) as sent,
        coalesce(sum(case when sends.is_delivered then 1 else 0 end), 0) as delivered,
        coalesce(sum(case when sends.is_bounced_hard then 1 else 0 end), 0) as bounced_hard,
        coalesce(sum(case when sends.is_bounced_soft then 1 else 0 end), 0) as bounced_soft,
        coalesce(sum(case when sends.is_opened then 1 else 0 end), 0) as unique_opens,
        coalesce(sum(case when sends.is_opened_excl_machine then 1 else 0 end), 0) as unique_opens_excl_machine,
        coalesce(sum(sends.opens), 0) as total_opens,
        coalesce(sum(case when sends.is_clicked then 1 else 0 end), 0) as unique_clicks,
        coalesce(sum(sends.clicks), 0) as total_clicks,
        coalesce(sum(case when sends.is_unsubscribed then 1 else 0 end), 0) as unsubscribes,
        coalesce(sum(case when sends.is_complained then 1 else 0 end), 0) as complaints
    from campaigns
    left join sends on sends.campaign_id = campaigns.campaign_id
    where not campaigns.is_deleted
    group by 1, 2, 3, 4, 5

),

rated as (

    select
        *,
        case when delivered > 0 then 1.0 * unique_opens_excl_machine / delivered end as open_rate_excl_machine,
        case when delivered > 0 then 1.0 * unique_clicks / delivered end as click_rate
    from per_campaign

),

with_control as (

    select
        rated.*,
        control.campaign_id as control_campaign_id,
        control.delivered as control_delivered,
        control.unique_opens_excl_machine as control_opens,
        control.unique_clicks as control_clicks,
        control.open_rate_excl_machine as control_open_rate,
        control.click_rate as control_click_rate
    from rated
    left join rated as control
        on control.ab_test_name = rated.ab_test_name
        and control.variant = 'A'
        and rated.variant <> 'A'

),

tested as (

    select
        *,
        case when control_delivered > 0 and delivered > 0 then
            (open_rate_excl_machine - control_open_rate) / nullif(sqrt(
                (1.0 * (unique_opens_excl_machine + control_opens) / (delivered + control_delivered))
                * (1 - 1.0 * (unique_opens_excl_machine + control_opens) / (delivered + control_delivered))
                * (1.0 / delivered + 1.0 / control_delivered)), 0)
        end as open_z,
        case when control_delivered > 0 and delivered > 0 then
            (click_rate - control_click_rate) / nullif(sqrt(
                (1.0 * (unique_clicks + control_clicks) / (delivered + control_delivered))
                * (1 - 1.0 * (unique_clicks + control_clicks) / (delivered + control_delivered))
                * (1.0 / delivered + 1.0 / control_delivered)), 0)
        end as click_z
    from with_control

),

final as (

    select
        campaign_id,
        variant,
        campaign_name,
        campaign_type,
        ab_test_name,
        control_campaign_id,
        sent,
        delivered,
        bounced_hard,
        bounced_soft,
        unique_opens,
        unique_opens_excl_machine,
        total_opens,
        unique_clicks,
        total_clicks,
        unsubscribes,
        complaints,
        {% for m in ['bounced_hard', 'bounced_soft', 'unique_opens', 'unique_opens_excl_machine', 'unique_clicks', 'unsubscribes', 'complaints'] %}
        cast(case when delivered > 0 then 100.0 * {{ m }} / delivered end as decimal(7, 2)) as {{ m }}_rate,
        {% endfor %}
        cast(case when control_open_rate > 0
            then 100.0 * (open_rate_excl_machine - control_open_rate) / control_open_rate end as decimal(9, 2)) as open_lift_pct,
        cast(open_z as decimal(9, 4)) as open_z,
        cast(case when open_z is not null then 2 * (1 - {{ normal_cdf('abs(open_z)') }}) end as decimal(9, 5)) as open_p_value,
        cast(case when control_click_rate > 0
            then 100.0 * (click_rate - control_click_rate) / control_click_rate end as decimal(9, 2)) as click_lift_pct,
        cast(click_z as decimal(9, 4)) as click_z,
        cast(case when click_z is not null then 2 * (1 - {{ normal_cdf('abs(click_z)') }}) end as decimal(9, 5)) as click_p_value
    from tested

)

select * from final
