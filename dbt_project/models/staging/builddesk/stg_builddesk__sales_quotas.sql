with

source as (

    {{ contract_source('sales_quotas') }}

),

renamed as (

    select
        id as quota_id,
        company_id,
        user_id,
        quota_period,
        start_date,
        end_date,
        revenue_target,
        deals_target,
        calls_target,
        meetings_target,
        territory,
        deal_types,
        is_active,
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
