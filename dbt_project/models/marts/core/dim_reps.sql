{#- Reps are user_profiles (there is no rep table); no e-mail or phone here. -#}

with

companies as (

    select company_id, name as company_name from {{ ref('stg_builddesk__companies') }}

),

profiles as (

    select * from {{ ref('stg_builddesk__user_profiles') }}

),

final as (

    select
        user_id as rep_id,
        profiles.company_id,
        companies.company_name,
        trim(coalesce(first_name, '') || ' ' || coalesce(last_name, '')) as rep_name,
        role,
        is_active,
        is_deleted,
        created_at
    from profiles
    left join companies on companies.company_id = profiles.company_id

)

select * from final
