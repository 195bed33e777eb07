{#- indexes: PostgreSQL only (DuckDB's ART indexes would slow its bulk writes), for the keyed deletes of delete+insert and the high-water mark. -#}
{{ config(
    materialized='incremental',
    indexes=([{'columns': ['provider', 'event_id']}, {'columns': ['changed_at']}] if target.type == 'postgres' else []),
    unique_key=['provider', 'event_id'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    post_hook=["{{ wap_delta_finish() }}"],
) }}

{#-
  One row per provider event (deduplicated in raw on provider + event id). Incremental: only
  events loaded since the last build, minus var load_lookback_minutes; the merge key makes a re-read harmless.
-#}

with

source as (

    select * from {{ source('email', 'email_events') }}
    {% if is_incremental() %}
    where {{ changed_at() }} >= {{ load_high_water_mark() }}
    {% endif %}

),

renamed as (

    select
        provider,
        event_id,
        provider_message_id,
        event_type,
        provider_event_type,
        occurred_at,
        {{ utc_date('occurred_at') }} as occurred_date,
        lower(recipient) as recipient_email,
        url,
        bounce_class,
        coalesce(is_machine_open, false) as is_machine_open,
        user_agent,
        ip as ip_address,
        tags,
        received_at,
        source_file,
        source_line,
        _batch_id as batch_id,
        _ingested_at as ingested_at,
        _deleted_at as deleted_at,
        _deleted_at is not null as is_deleted,
        {{ changed_at() }} as changed_at
    from source

)

select * from renamed
