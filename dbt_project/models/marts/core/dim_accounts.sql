{#-
  One row per account: the organisations BuildDesk's tenants sell to, which the CRM has no table for,
  derived from the company names and e-mail domains of their contacts and leads (int_account_members:
  the rule is there). account_name is the spelling its members use most (ties: the least), else its
  domain; primary_domain the company domain its members use most.
-#}

with

members as (

    select * from {{ ref('int_account_members') }}
    where account_id is not null

),

spellings as (

    select account_id, company_name as account_name
    from (
        select
            account_id,
            company_name,
            row_number() over (partition by account_id order by count(*) desc, company_name) as spelling_rank
        from members
        where name_key is not null
        group by account_id, company_name
    ) as ranked
    where spelling_rank = 1

),

domains as (

    select account_id, domain_key as primary_domain
    from (
        select
            account_id,
            domain_key,
            row_number() over (partition by account_id order by count(*) desc, domain_key) as domain_rank
        from members
        where domain_key is not null
        group by account_id, domain_key
    ) as ranked
    where domain_rank = 1

),

per_account as (

    select
        account_id,
        company_id,
        min(account_key) as account_key,
        sum(case when record_type = 'contact' then 1 else 0 end) as contacts,
        sum(case when record_type = 'lead' then 1 else 0 end) as leads,
        sum(case when matched_by <> 'name' then 1 else 0 end) as matched_by_domain,
        count(distinct domain_key) as domains,
        min(created_at) as first_seen_at
    from members
    group by account_id, company_id

),

final as (

    select
        per_account.account_id,
        per_account.company_id,
        companies.name as company_name,
        coalesce(spellings.account_name, domains.primary_domain) as account_name,
        per_account.account_key,
        domains.primary_domain,
        per_account.domains,
        per_account.contacts,
        per_account.leads,
        per_account.matched_by_domain,
        per_account.first_seen_at
    from per_account
    left join spellings on spellings.account_id = per_account.account_id
    left join domains on domains.account_id = per_account.account_id
    left join {{ ref('stg_builddesk__companies') }} as companies on companies.company_id = per_account.company_id

)

select * from final
