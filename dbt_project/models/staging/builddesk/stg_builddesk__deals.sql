with

source as (

    {{ contract_source('deals') }}

),

renamed as (

    select
        id as deal_id,
        company_id,
        lead_id,
        contact_id,
        pipeline_template_id,
        current_stage_id,
        name,
        description,
        deal_type,
        estimated_value,
        actual_value,
        weighted_value,
        days_in_pipeline,
        expected_close_date,
        actual_close_date,
        primary_contact_id,
        account_manager_id,
        sales_rep_id,
        competitors,
        competitive_advantage,
        key_success_factors,
        risk_level,
        risk_factors,
        mitigation_strategies,
        status,
        priority,
        source,
        won_reason,
        lost_reason,
        lost_to_competitor,
        custom_fields,
        tags,
        created_by,
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
