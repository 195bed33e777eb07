{#-
  One row per rep quota (sales_quotas): targets against what the rep did in the quota's period.
  Won revenue and deals: the rep's (sales_rep_id) deals closed in the period (actual_close_date),
  valued at actual_value, else estimated_value. Calls and meetings: deal_activities (assigned_to,
  else created_by) and crm_activities (created_by) of that type, dated in the period. Open pipeline:
  the rep's deals open at the as-of day with an expected close date in the period; coverage =
  open pipeline / the quota still to win (null when nothing remains). Speed to lead: the rep's
  requests (lead_response_times) made in the period: median hours to the first touch of those
  answered, and the share of those the SLA has judged that were answered within it.
-#}

with

quotas as (

    select * from {{ ref('stg_builddesk__sales_quotas') }}
    where not is_deleted

),

deals as (

    select * from {{ ref('fct_deals') }}
    where not is_deleted

),

reps as (

    select * from {{ ref('dim_reps') }}

),

as_of as (

    select * from {{ ref('int_as_of') }}

),

activities as (

    select
        coalesce(assigned_to, created_by) as rep_id,
        activity_type,
        {{ utc_date('coalesce(completed_at, created_at)') }} as activity_date
    from {{ ref('stg_builddesk__deal_activities') }}
    where not is_deleted and activity_type in ('call', 'meeting')
        and coalesce(completed_at, created_at) < (select as_of_end_utc from as_of)
    union all
    select
        created_by as rep_id,
        activity_type,
        {{ utc_date('activity_date') }} as activity_date
    from {{ ref('stg_builddesk__crm_activities') }}
    where not is_deleted and activity_type in ('call', 'meeting')
        and activity_date < (select as_of_end_utc from as_of)

),

closed as (

    select
        quotas.quota_id,
        sum(case when deals.status = 'won' then 1 else 0 end) as deals_won,
        sum(case when deals.status = 'lost' then 1 else 0 end) as deals_lost,
        sum(case when deals.status = 'won' then coalesce(deals.actual_value, deals.estimated_value) else 0 end) as revenue_won,
        {{ avg_decimal('deals.cycle_days') }} as average_cycle_days
    from quotas
    inner join deals
        on deals.rep_id = quotas.user_id
        and deals.company_id = quotas.company_id
        and deals.status in ('won', 'lost')
        and deals.actual_close_date between quotas.start_date and quotas.end_date
    group by quotas.quota_id

),

responses as (

    select
        quotas.quota_id,
        count(*) as lead_requests,
        -- the median of hundredths is whole or a half, exact in any float: rounded half up the same on both targets
        cast(cast(cast(floor({{ median('lead_response_times.response_hours * 100') }} + 0.5) as bigint) as decimal(14, 0))
            * 0.01 as decimal(12, 2)) as median_response_hours,
        cast(100.0 * sum(case when lead_response_times.within_sla then 1 else 0 end)
            / nullif(sum(case when lead_response_times.within_sla is not null then 1 else 0 end), 0)
            as decimal(5, 2)) as within_sla_pct
    from quotas
    inner join {{ ref('lead_response_times') }} as lead_response_times
        on lead_response_times.rep_id = quotas.user_id
        and {{ utc_date('lead_response_times.triggered_at') }} between quotas.start_date and quotas.end_date
    group by quotas.quota_id

),

activity_counts as (

    select
        quotas.quota_id,
        sum(case when activities.activity_type = 'call' then 1 else 0 end) as calls,
        sum(case when activities.activity_type = 'meeting' then 1 else 0 end) as meetings
    from quotas
    inner join activities
        on activities.rep_id = quotas.user_id
        and activities.activity_date between quotas.start_date and quotas.end_date
    group by quotas.quota_id

),

open_pipeline as (

    select
        quotas.quota_id,
        count(*) as open_deals,
        sum(deals.estimated_value) as open_pipeline_value,
        sum(deals.weighted_value) as open_weighted_value
    from quotas
    inner join deals
        on deals.rep_id = quotas.user_id
        and deals.company_id = quotas.company_id
        and deals.status in ('active', 'on_hold')
        and deals.expected_close_date between quotas.start_date and quotas.end_date
    group by quotas.quota_id

),

final as (

    select
        quotas.user_id as rep_id,
        quotas.quota_id,
        quotas.start_date as period_start,
        quotas.end_date as period_end,
        quotas.company_id,
        reps.company_name,
        reps.rep_name,
        quotas.quota_period,
        quotas.revenue_target,
        cast(coalesce(closed.revenue_won, 0) as decimal(15, 2)) as revenue_won,
        cast(case when quotas.revenue_target > 0
            then 100.0 * coalesce(closed.revenue_won, 0) / quotas.revenue_target end as decimal(9, 2)) as attainment_pct,
        quotas.deals_target,
        coalesce(closed.deals_won, 0) as deals_won,
        coalesce(closed.deals_lost, 0) as deals_lost,
        cast(case when closed.deals_won + closed.deals_lost > 0
            then 100.0 * closed.deals_won / (closed.deals_won + closed.deals_lost) end as decimal(5, 2)) as win_rate,
        cast(case when closed.deals_won > 0 then closed.revenue_won / closed.deals_won end as decimal(15, 2)) as average_deal_size,
        cast(closed.average_cycle_days as decimal(8, 2)) as average_cycle_days,
        quotas.calls_target,
        coalesce(activity_counts.calls, 0) as calls,
        quotas.meetings_target,
        coalesce(activity_counts.meetings, 0) as meetings,
        coalesce(responses.lead_requests, 0) as lead_requests,
        responses.median_response_hours,
        responses.within_sla_pct,
        coalesce(open_pipeline.open_deals, 0) as open_deals,
        cast(coalesce(open_pipeline.open_pipeline_value, 0) as decimal(15, 2)) as open_pipeline_value,
        cast(greatest(quotas.revenue_target - coalesce(closed.revenue_won, 0), 0) as decimal(15, 2)) as remaining_quota,
        cast(case when quotas.revenue_target - coalesce(closed.revenue_won, 0) > 0
            then coalesce(open_pipeline.open_pipeline_value, 0) / (quotas.revenue_target - coalesce(closed.revenue_won, 0))
        end as decimal(9, 2)) as pipeline_coverage
    from quotas
    left join reps on reps.rep_id = quotas.user_id
    left join closed on closed.quota_id = quotas.quota_id
    left join activity_counts on activity_counts.quota_id = quotas.quota_id
    left join open_pipeline on open_pipeline.quota_id = quotas.quota_id
    left join responses on responses.quota_id = quotas.quota_id

)

select * from final
