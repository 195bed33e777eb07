{#-
  One row per account (dim_accounts) with what the tenant has with it as of the as-of day: its contacts
  and leads, the opportunities and deals of its contacts (else of its leads), open and won value, the last
  touch, and its decision makers (leads marked decision_maker, and contacts and leads whose job title is an
  owner's, founder's, president's, principal's, partner's, chief officer's, vice president's, general
  manager's or director's: macro is_decision_maker_title).
-#}

with

as_of as (

    select * from {{ ref('int_as_of') }}

),

members as (

    select * from {{ ref('int_account_members') }}
    where account_id is not null

),

contact_accounts as (

    select record_id as contact_id, account_id from members where record_type = 'contact'

),

lead_accounts as (

    select record_id as lead_id, account_id from members where record_type = 'lead'

),

opportunities as (

    select
        coalesce(contact_accounts.account_id, lead_accounts.account_id) as account_id,
        opportunities.opportunity_id
    from {{ ref('stg_builddesk__opportunities') }} as opportunities
    left join contact_accounts on contact_accounts.contact_id = opportunities.contact_id
    left join lead_accounts on lead_accounts.lead_id = opportunities.lead_id
    where not opportunities.is_deleted
        and opportunities.created_at < (select as_of_end_utc from as_of)

),

deals as (

    select
        coalesce(contact_accounts.account_id, lead_accounts.account_id) as account_id,
        deals.deal_id,
        deals.contact_id,
        deals.status,
        deals.estimated_value,
        deals.won_value
    from {{ ref('fct_deals') }} as deals
    left join contact_accounts on contact_accounts.contact_id = deals.contact_id
    left join lead_accounts on lead_accounts.lead_id = deals.lead_id
    where not deals.is_deleted

),

touches as (

    select lead_accounts.account_id, {{ utc_date('touches.touched_at') }} as touch_date
    from {{ ref('int_lead_touches') }} as touches
    inner join lead_accounts on lead_accounts.lead_id = touches.lead_id
    union all
    select lead_accounts.account_id, leads.last_contact_date
    from {{ ref('int_leads_with_tenant') }} as leads
    inner join lead_accounts on lead_accounts.lead_id = leads.lead_id
    where leads.last_contact_date <= (select as_of_date from as_of)
    union all
    select contact_accounts.account_id, contacts.last_contact_date
    from {{ ref('stg_builddesk__contacts') }} as contacts
    inner join contact_accounts on contact_accounts.contact_id = contacts.contact_id
    where contacts.last_contact_date <= (select as_of_date from as_of)
    union all
    select contact_accounts.account_id, {{ utc_date('coalesce(activities.completed_at, activities.created_at)') }}
    from {{ ref('stg_builddesk__deal_activities') }} as activities
    inner join contact_accounts on contact_accounts.contact_id = activities.contact_id
    where not activities.is_deleted
        and coalesce(activities.completed_at, activities.created_at) < (select as_of_end_utc from as_of)

),

decision_makers as (

    select contact_accounts.account_id, count(*) as decision_makers
    from {{ ref('stg_builddesk__contacts') }} as contacts
    inner join contact_accounts on contact_accounts.contact_id = contacts.contact_id
    where {{ is_decision_maker_title('contacts.job_title') }}
    group by contact_accounts.account_id
    union all
    select lead_accounts.account_id, count(*)
    from {{ ref('int_leads_with_tenant') }} as leads
    inner join lead_accounts on lead_accounts.lead_id = leads.lead_id
    where coalesce(leads.decision_maker, false) or {{ is_decision_maker_title('leads.job_title') }}
    group by lead_accounts.account_id

),

final as (

    select
        accounts.account_id,
        accounts.company_id,
        accounts.company_name,
        accounts.account_name,
        accounts.primary_domain,
        accounts.contacts,
        accounts.leads,
        coalesce(opps.opportunities, 0) as opportunities,
        coalesce(deal_sums.deals, 0) as deals,
        coalesce(deal_sums.open_deals, 0) as open_deals,
        cast(coalesce(deal_sums.open_value, 0) as decimal(18, 2)) as open_value,
        coalesce(deal_sums.won_deals, 0) as won_deals,
        cast(coalesce(deal_sums.won_value, 0) as decimal(18, 2)) as won_value,
        last_touch.last_touch_date,
        {{ date_diff_days('last_touch.last_touch_date', 'as_of.as_of_date') }} as days_since_last_touch,
        coalesce(dm.decision_makers, 0) as decision_makers
    from {{ ref('dim_accounts') }} as accounts
    cross join as_of
    left join (
        select account_id, count(*) as opportunities from opportunities group by account_id
    ) as opps on opps.account_id = accounts.account_id
    left join (
        select
            account_id,
            count(*) as deals,
            sum(case when status in ('active', 'on_hold') then 1 else 0 end) as open_deals,
            sum(case when status in ('active', 'on_hold') then estimated_value else 0 end) as open_value,
            sum(case when status = 'won' then 1 else 0 end) as won_deals,
            sum(case when status = 'won' then won_value else 0 end) as won_value
        from deals
        group by account_id
    ) as deal_sums on deal_sums.account_id = accounts.account_id
    left join (
        select account_id, max(touch_date) as last_touch_date from touches group by account_id
    ) as last_touch on last_touch.account_id = accounts.account_id
    left join (
        select account_id, sum(decision_makers) as decision_makers from decision_makers group by account_id
    ) as dm on dm.account_id = accounts.account_id

)

select * from final
