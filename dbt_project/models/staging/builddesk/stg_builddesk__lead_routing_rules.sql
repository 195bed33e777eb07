with

source as (

    {{ contract_source('lead_routing_rules') }}

),

renamed as (

    select
        id as routing_rule_id,
        company_id,
        name,
        description,
        priority,
        is_active,
        conditions,
        assign_to_user_id,
        assign_to_team,
        set_priority,
        add_tags,
        auto_create_tasks,
        use_round_robin,
        round_robin_users,
        last_assigned_user_id,
        created_at,
        updated_at,
        _batch_id as batch_id,
        _ingested_at as ingested_at,
        _deleted_at as deleted_at,
        _deleted_at is not null as is_deleted,
        {{ changed_at() }} as changed_at
    from source

)

select * from renamed
