{{ config(meta={'dagster': {'ref': {'name': 'fct_deal_daily_snapshot'}}}) }}

-- Invariant: on its close day (within the modelled history), a closed deal's daily snapshot row shows the
-- deal's outcome, and no snapshot row follows its close day. Returns the deals that disagree.
with

closed as (

    select deal_id, status, actual_close_date
    from {{ ref('fct_deals') }}
    where status in ('won', 'lost') and not is_deleted
        and actual_close_date <= (select as_of_date from {{ ref('int_as_of') }})

)

select closed.deal_id, closed.status, snapshot.status as snapshot_status, snapshot.snapshot_date
from closed
left join {{ ref('fct_deal_daily_snapshot') }} as snapshot
    on snapshot.deal_id = closed.deal_id
    and snapshot.snapshot_date >= closed.actual_close_date
where snapshot.deal_id is null
    or snapshot.snapshot_date > closed.actual_close_date
    or snapshot.status <> closed.status
