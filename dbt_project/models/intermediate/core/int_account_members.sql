{#-
  Every live contact and lead with the account it belongs to. Accounts are derived per tenant (never
  across tenants) by one rule, in order:
    1. a record with a company name belongs to the account of its name key (macro company_name_key:
       case, punctuation, '&'/'and', a leading 'the' and trailing legal forms do not matter);
    2. a record without a usable name, but with an e-mail domain that is not free mail (seed
       free_email_domains), joins the named account whose records use that domain most (ties: the least
       name key);
    3. otherwise it forms (or joins) an account of its domain alone;
    4. a record with neither a name nor a company domain belongs to no account (account_id null).
  Names are not merged by domain (two trades of one group sharing a domain stay two accounts), and a
  domain never splits a name. Opportunities and deals belong to the account of their contact, else of
  their lead (account_summary). account_id is md5 of the tenant and the account key.
-#}

with

free_domains as (

    select lower(domain) as domain from {{ ref('free_email_domains') }}

),

members as (

    select 'contact' as record_type, contact_id as record_id, company_id, company_name, email, created_at
    from {{ ref('stg_builddesk__contacts') }}
    where not is_deleted
    union all
    select 'lead', lead_id, company_id, company_name, email, created_at
    from {{ ref('int_leads_with_tenant') }}
    where not is_deleted

),

keyed as (

    select
        members.*,
        {{ company_name_key('members.company_name') }} as name_key,
        case when free_domains.domain is null then {{ email_domain('members.email') }} end as domain_key
    from members
    left join free_domains on free_domains.domain = {{ email_domain('members.email') }}

),

domain_votes as (

    select company_id, domain_key, name_key, count(*) as records
    from keyed
    where name_key is not null and domain_key is not null
    group by company_id, domain_key, name_key

),

domain_owners as (

    select company_id, domain_key, name_key
    from (
        select
            domain_votes.*,
            row_number() over (
                partition by company_id, domain_key order by records desc, name_key
            ) as vote_rank
        from domain_votes
    ) as ranked
    where vote_rank = 1

),

assigned as (

    select
        keyed.record_type,
        keyed.record_id,
        keyed.company_id,
        keyed.company_name,
        keyed.name_key,
        keyed.domain_key,
        keyed.created_at,
        case
            when keyed.name_key is not null then 'name:' || keyed.name_key
            when domain_owners.name_key is not null then 'name:' || domain_owners.name_key
            when keyed.domain_key is not null then 'domain:' || keyed.domain_key
        end as account_key,
        case
            when keyed.name_key is not null then 'name'
            when domain_owners.name_key is not null then 'domain_of_named_account'
            when keyed.domain_key is not null then 'domain'
        end as matched_by
    from keyed
    left join domain_owners
        on domain_owners.domain_key = keyed.domain_key
        and (domain_owners.company_id = keyed.company_id
             or (domain_owners.company_id is null and keyed.company_id is null))
        and keyed.name_key is null

)

select
    record_type,
    record_id,
    company_id,
    case when account_key is not null then
        md5(coalesce(cast(company_id as varchar), '') || '|' || account_key)
    end as account_id,
    account_key,
    matched_by,
    company_name,
    name_key,
    domain_key,
    created_at
from assigned
