{#- Reps are user_profiles (there is no rep table); no e-mail or phone here. -#}

with

profiles as (

    select * from {{ ref('stg_builddesk__user_profiles') }}

),

final as (

    select
        user_id as rep_id,
        company_id,
        trim(coalesce(first_name, '') || ' ' || coalesce(last_name, '')) as rep_name,
        role,
        is_active,
        is_deleted,
        created_at
    from profiles

)

select * from final
