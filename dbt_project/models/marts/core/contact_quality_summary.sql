{#-
  Contact quality per company x owner (the contacts' assigned rep; null: unassigned): the contacts of
  contact_quality with their average quality_score, how many lack a required field, and how many have each
  problem; and decision-maker coverage of the opportunities whose contact (else lead) the owner holds: an
  opportunity is covered when its contact or lead is a decision maker (job title, or the lead's
  decision_maker flag) or its account (dim_accounts) has one.
-#}

with

as_of as (

    select * from {{ ref('int_as_of') }}

),

quality as (

    select * from {{ ref('contact_quality') }}

),

per_owner as (

    select
        company_id,
        rep_id,
        count(*) as contacts,
        {{ avg_decimal('quality_score') }} as average_quality_score,
        sum(case when completeness_pct < 100 then 1 else 0 end) as incomplete,
        sum(case when invalid_email then 1 else 0 end) as invalid_email,
        sum(case when invalid_phone then 1 else 0 end) as invalid_phone,
        sum(case when hard_bounced then 1 else 0 end) as hard_bounced,
        sum(case when complained then 1 else 0 end) as complained,
        sum(case when unsubscribed then 1 else 0 end) as unsubscribed,
        sum(case when duplicate_email_records > 0 then 1 else 0 end) as duplicate_email,
        sum(case when duplicate_name_records > 0 then 1 else 0 end) as duplicate_name,
        sum(case when is_stale then 1 else 0 end) as stale,
        sum(case when is_decision_maker then 1 else 0 end) as decision_makers
    from quality
    group by company_id, rep_id

),

members as (

    select * from {{ ref('int_account_members') }}

),

accounts_with_dm as (

    select account_id from {{ ref('account_summary') }} where decision_makers > 0

),

opportunities as (

    select
        opportunities.opportunity_id,
        coalesce(contacts.company_id, leads.company_id, opportunities.company_id) as company_id,
        coalesce(contacts.assigned_to, leads.assigned_to) as rep_id,
        coalesce(quality.is_decision_maker, false)
            or coalesce(leads.decision_maker, false)
            or coalesce({{ is_decision_maker_title('leads.job_title') }}, false)
            or accounts_with_dm.account_id is not null as has_decision_maker
    from {{ ref('stg_builddesk__opportunities') }} as opportunities
    left join {{ ref('stg_builddesk__contacts') }} as contacts
        on contacts.contact_id = opportunities.contact_id and not contacts.is_deleted
    left join quality on quality.contact_id = opportunities.contact_id
    left join {{ ref('int_leads_with_tenant') }} as leads
        on leads.lead_id = opportunities.lead_id and not leads.is_deleted
    -- the contact's account, else the lead's; one equality key (an OR of two keys cannot be a hash join: at the
    -- large tier that nested loop over 100k opportunities x 1.3 M members took 231 s of a 382 s build)
    left join members
        on members.record_type = case when contacts.contact_id is not null then 'contact' else 'lead' end
        and members.record_id = coalesce(contacts.contact_id, leads.lead_id)
    left join accounts_with_dm on accounts_with_dm.account_id = members.account_id
    where not opportunities.is_deleted
        and opportunities.created_at < (select as_of_end_utc from as_of)

),

per_owner_opportunities as (

    select
        company_id,
        rep_id,
        count(*) as opportunities,
        sum(case when has_decision_maker then 1 else 0 end) as opportunities_with_decision_maker
    from opportunities
    group by company_id, rep_id

),

owners as (

    select company_id, rep_id from per_owner
    union
    select company_id, rep_id from per_owner_opportunities

),

final as (

    select
        owners.company_id,
        companies.name as company_name,
        owners.rep_id,
        reps.rep_name,
        coalesce(per_owner.contacts, 0) as contacts,
        per_owner.average_quality_score,
        coalesce(per_owner.incomplete, 0) as incomplete,
        coalesce(per_owner.invalid_email, 0) as invalid_email,
        coalesce(per_owner.invalid_phone, 0) as invalid_phone,
        coalesce(per_owner.hard_bounced, 0) as hard_bounced,
        coalesce(per_owner.complained, 0) as complained,
        coalesce(per_owner.unsubscribed, 0) as unsubscribed,
        coalesce(per_owner.duplicate_email, 0) as duplicate_email,
        coalesce(per_owner.duplicate_name, 0) as duplicate_name,
        coalesce(per_owner.stale, 0) as stale,
        coalesce(per_owner.decision_makers, 0) as decision_makers,
        coalesce(opps.opportunities, 0) as opportunities,
        coalesce(opps.opportunities_with_decision_maker, 0) as opportunities_with_decision_maker,
        cast(100.0 * opps.opportunities_with_decision_maker / nullif(opps.opportunities, 0) as decimal(5, 2))
            as decision_maker_coverage_pct
    from owners
    left join per_owner
        on per_owner.company_id is not distinct from owners.company_id
        and per_owner.rep_id is not distinct from owners.rep_id
    left join per_owner_opportunities as opps
        on opps.company_id is not distinct from owners.company_id
        and opps.rep_id is not distinct from owners.rep_id
    left join {{ ref('stg_builddesk__companies') }} as companies on companies.company_id = owners.company_id
    left join {{ ref('dim_reps') }} as reps on reps.rep_id = owners.rep_id

)

select * from final
