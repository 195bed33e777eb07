{#-
  BuildDesk's live leads table has no company_id (staging: source_company_id, null there). Every lead gets its tenant from, in order: the
  lead's own company_id (where the source has one), its assigned rep's company, the company of the
  user it converted to, the company of the rep handling its demo or sales-contact requests, the
  company of its deals. company_id_source says which; a lead nothing resolves keeps a null company.
-#}
with

leads as (

    select * from {{ ref('stg_builddesk__leads') }}

),

profiles as (

    select user_id as user_profile_id, company_id from {{ ref('stg_builddesk__user_profiles') }}

),

demo_requests as (

    select lead_id, assigned_sales_rep as rep_id from {{ ref('stg_builddesk__demo_requests') }}

),

sales_contact_requests as (

    select lead_id, assigned_to as rep_id from {{ ref('stg_builddesk__sales_contact_requests') }}

),

deals as (

    select lead_id, company_id from {{ ref('stg_builddesk__deals') }}

),

request_companies as (

    select
        requests.lead_id,
        {{ min_uuid('profiles.company_id') }} as company_id
    from (
        select lead_id, rep_id from demo_requests
        union all
        select lead_id, rep_id from sales_contact_requests
    ) as requests
    inner join profiles on profiles.user_profile_id = requests.rep_id
    where requests.lead_id is not null and profiles.company_id is not null
    group by requests.lead_id

),

deal_companies as (

    select
        lead_id,
        {{ min_uuid('company_id') }} as company_id
    from deals
    where lead_id is not null and company_id is not null
    group by lead_id

),

resolved as (

    select
        leads.lead_id,
        leads.source_company_id as from_lead,
        assigned.company_id as from_assigned_rep,
        converted.company_id as from_converted_user,
        request_companies.company_id as from_request_rep,
        deal_companies.company_id as from_deal
    from leads
    left join profiles as assigned on assigned.user_profile_id = leads.assigned_to
    left join profiles as converted on converted.user_profile_id = leads.converted_to_user_id
    left join request_companies on request_companies.lead_id = leads.lead_id
    left join deal_companies on deal_companies.lead_id = leads.lead_id

),

final as (

    select
        leads.*,
        coalesce(resolved.from_lead, resolved.from_assigned_rep, resolved.from_converted_user,
                 resolved.from_request_rep, resolved.from_deal) as company_id,
        case
            when resolved.from_lead is not null then 'lead'
            when resolved.from_assigned_rep is not null then 'assigned_rep'
            when resolved.from_converted_user is not null then 'converted_user'
            when resolved.from_request_rep is not null then 'request_rep'
            when resolved.from_deal is not null then 'deal'
        end as company_id_source
    from leads
    inner join resolved on resolved.lead_id = leads.lead_id

)

select * from final
