{{ config(meta={'dagster': {'ref': {'name': 'win_loss'}}}) }}

-- Invariant: win_loss has exactly the live won and lost deals of fct_deals. Returns the deals in one and not the other.
select fct_deals.deal_id, win_loss.deal_id as win_loss_deal_id
from (select deal_id from {{ ref('fct_deals') }} where status in ('won', 'lost') and not is_deleted) as fct_deals
full outer join {{ ref('win_loss') }} as win_loss on win_loss.deal_id = fct_deals.deal_id
where fct_deals.deal_id is null or win_loss.deal_id is null
