with

source as (

    {{ contract_source('opportunities') }}

),

renamed as (

    select
        id as opportunity_id,
        company_id,
        name,
        description,
        project_type,
        lead_id,
        contact_id,
        project_id,
        cast(estimated_value as decimal(15, 2)) as estimated_value,
        cast(actual_value as decimal(15, 2)) as actual_value,
        probability_percent,
        stage,
        pipeline_position,
        expected_close_date,
        bid_required,
        bid_due_date,
        proposal_sent_date,
        contract_signed_date,
        competitor_names,
        our_competitive_advantage,
        key_decision_factors,
        risk_level,
        risk_factors,
        mitigation_strategies,
        account_manager,
        estimator,
        project_manager,
        close_date,
        close_reason,
        notes,
        tags,
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
