with

source as (

    {{ contract_source('email_campaigns') }}

),

renamed as (

    select
        id as campaign_id,
        campaign_name,
        campaign_description,
        campaign_type,
        trigger_type,
        trigger_conditions,
        trigger_event,
        subject_line,
        preview_text,
        from_name,
        from_email,
        reply_to,
        html_content,
        text_content,
        template_id,
        template_variables,
        send_delay_minutes,
        send_at_time,
        send_on_days,
        sequence_name,
        sequence_order,
        ab_test_enabled,
        ab_test_variant,
        ab_test_traffic_percentage,
        is_active,
        total_sent,
        total_delivered,
        total_opened,
        total_clicked,
        total_unsubscribed,
        total_bounced,
        total_complained,
        created_by,
        last_sent_at,
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
