with

source as (

    {{ contract_source('demo_requests') }}

),

renamed as (

    select
        id as demo_request_id,
        lead_id,
        email,
        first_name,
        last_name,
        company_name,
        phone,
        demo_type,
        preferred_date,
        preferred_time,
        timezone,
        message,
        scheduled_at,
        calendar_event_id,
        meeting_url,
        status,
        completed_at,
        cancelled_at,
        cancellation_reason,
        follow_up_sent,
        follow_up_sent_at,
        converted_to_paid,
        converted_at,
        assigned_sales_rep,
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
