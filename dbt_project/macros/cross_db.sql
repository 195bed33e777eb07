{#-
  The few places where DuckDB and PostgreSQL differ, each one macro with a duckdb__ and a
  postgres__ implementation (dbt-duckdb dispatches to default__, never to postgres__).
-#}

{#- When a raw row last changed: loaded, re-loaded or flagged deleted (drives incremental models). -#}
{% macro changed_at() -%}
    greatest(_ingested_at, coalesce(_deleted_at, _ingested_at))
{%- endmacro %}

{#- The UTC calendar day of a timestamptz (days are cut in UTC whatever the session time zone). -#}
{% macro utc_date(ts) -%}
    cast(({{ ts }}) at time zone 'UTC' as date)
{%- endmacro %}

{#- Fractional days between two timestamps (b - a). -#}
{% macro days_between(a, b) -%}
    {{ return(adapter.dispatch('days_between')(a, b)) }}
{%- endmacro %}
{% macro default__days_between(a, b) -%}
    (epoch(({{ b }})) - epoch(({{ a }}))) / 86400.0
{%- endmacro %}
{% macro postgres__days_between(a, b) -%}
    (extract(epoch from ({{ b }})) - extract(epoch from ({{ a }}))) / 86400.0
{%- endmacro %}

{#- Whole days between two dates (b - a). -#}
{% macro date_diff_days(a, b) -%}
    {{ return(adapter.dispatch('date_diff_days')(a, b)) }}
{%- endmacro %}
{% macro default__date_diff_days(a, b) -%}
    date_diff('day', cast({{ a }} as date), cast({{ b }} as date))
{%- endmacro %}
{% macro postgres__date_diff_days(a, b) -%}
    (cast({{ b }} as date) - cast({{ a }} as date))
{%- endmacro %}

{#- date + n days, as a date. -#}
{% macro add_days(d, n) -%}
    {{ return(adapter.dispatch('add_days')(d, n)) }}
{%- endmacro %}
{% macro default__add_days(d, n) -%}
    cast(cast({{ d }} as date) + cast({{ n }} as integer) * interval 1 day as date)
{%- endmacro %}
{% macro postgres__add_days(d, n) -%}
    (cast({{ d }} as date) + cast({{ n }} as integer))
{%- endmacro %}

{#- Period start of a date: day, week (ISO, Monday), month, quarter. -#}
{% macro period_start(period, d) -%}
    cast(date_trunc('{{ period }}', cast({{ d }} as date)) as date)
{%- endmacro %}

{#- One row per day from start to end (inclusive), column date_day. -#}
{% macro day_series(start_date, end_date) -%}
    {{ return(adapter.dispatch('day_series')(start_date, end_date)) }}
{%- endmacro %}
{% macro default__day_series(start_date, end_date) -%}
    select cast(d as date) as date_day
    from generate_series(cast({{ start_date }} as date), cast({{ end_date }} as date), interval 1 day) as t(d)
{%- endmacro %}
{% macro postgres__day_series(start_date, end_date) -%}
    select cast(d as date) as date_day
    from generate_series(cast({{ start_date }} as date), cast({{ end_date }} as date), interval '1 day') as t(d)
{%- endmacro %}

{#- A JSON array of strings as a list (DuckDB VARCHAR[], PostgreSQL text[]); null stays null. -#}
{% macro json_array_list(col) -%}
    {{ return(adapter.dispatch('json_array_list')(col)) }}
{%- endmacro %}
{% macro default__json_array_list(col) -%}
    cast(json_extract_string({{ col }}, '$[*]') as varchar[])
{%- endmacro %}
{% macro postgres__json_array_list(col) -%}
    case when {{ col }} is not null then array(select jsonb_array_elements_text({{ col }})) end
{%- endmacro %}

{#- Median of an expression (an aggregate). -#}
{% macro median(expr) -%}
    {{ return(adapter.dispatch('median')(expr)) }}
{%- endmacro %}
{% macro default__median(expr) -%}
    quantile_cont({{ expr }}, 0.5)
{%- endmacro %}
{% macro postgres__median(expr) -%}
    percentile_cont(0.5) within group (order by {{ expr }})
{%- endmacro %}

{#- Standard normal CDF (for the z-test p-value): Abramowitz-Stegun 7.1.26 erf approximation, |error| < 1.5e-7. -#}
{% macro normal_cdf(z) -%}
    (case when ({{ z }}) >= 0 then 1 - 0.5 * {{ _erfc_pos('(' ~ z ~ ') / sqrt(2.0)') }}
          else 0.5 * {{ _erfc_pos('-(' ~ z ~ ') / sqrt(2.0)') }} end)
{%- endmacro %}
{% macro _erfc_pos(x) -%}
    ((0.254829592 * (1.0 / (1.0 + 0.3275911 * {{ x }}))
      - 0.284496736 * power(1.0 / (1.0 + 0.3275911 * {{ x }}), 2)
      + 1.421413741 * power(1.0 / (1.0 + 0.3275911 * {{ x }}), 3)
      - 1.453152027 * power(1.0 / (1.0 + 0.3275911 * {{ x }}), 4)
      + 1.061405429 * power(1.0 / (1.0 + 0.3275911 * {{ x }}), 5))
     * exp(-({{ x }}) * ({{ x }})))
{%- endmacro %}

{#- A JSON object text from key/value pairs of a group, keys in order (deterministic text). -#}
{% macro json_object_agg_text(key, value) -%}
    {{ return(adapter.dispatch('json_object_agg_text')(key, value)) }}
{%- endmacro %}
{% macro default__json_object_agg_text(key, value) -%}
    '{' || string_agg(cast(to_json({{ key }}) as varchar) || ':' || cast(to_json({{ value }}) as varchar), ',' order by {{ key }}) || '}'
{%- endmacro %}
{% macro postgres__json_object_agg_text(key, value) -%}
    '{' || string_agg(to_json({{ key }})::text || ':' || to_json({{ value }})::text, ',' order by {{ key }}) || '}'
{%- endmacro %}

{#- value x percent / 100 rounded to cents in exact decimal arithmetic on both engines (DuckDB turns
    decimal / integer into a double, which rounds 2515.705 down). -#}
{% macro weighted_value(value, percent) -%}
    cast(round(cast({{ value }} as decimal(15, 2)) * {{ percent }} * 0.01, 2) as decimal(15, 2))
{%- endmacro %}

{#- An average rounded to `scale` decimals the same way on both engines (DuckDB's avg of decimals is a
    double: fix it to 6 decimals before rounding, so 30.985 does not become 30.98). -#}
{% macro avg_decimal(expr, scale=2) -%}
    round(cast(avg({{ expr }}) as decimal(18, 6)), {{ scale }})
{%- endmacro %}

{#- The high-water mark of an incremental model: raw rows changed since then are re-read (the state
    before this build: the published table in a PostgreSQL delta build, macros/wap_delta.sql). -#}
{% macro load_high_water_mark() -%}
    (select max(changed_at) - interval '{{ var("load_lookback_minutes") | int }} minutes' from {{ incremental_state() }})
{%- endmacro %}

{#- The least of a group's UUIDs (PostgreSQL has no min(uuid)): a deterministic pick among several. -#}
{% macro min_uuid(col) -%}
    {{ return(adapter.dispatch('min_uuid')(col)) }}
{%- endmacro %}
{% macro default__min_uuid(col) -%}
    min({{ col }})
{%- endmacro %}
{% macro postgres__min_uuid(col) -%}
    cast(min(cast({{ col }} as text)) as uuid)
{%- endmacro %}

{#- Whole microseconds between two timestamps (b - a), exact on both targets (no float arithmetic:
    a figure rounded from it is the same on DuckDB and PostgreSQL). -#}
{% macro micros_between(a, b) -%}
    {{ return(adapter.dispatch('micros_between')(a, b)) }}
{%- endmacro %}
{% macro default__micros_between(a, b) -%}
    (epoch_us({{ b }}) - epoch_us({{ a }}))
{%- endmacro %}
{% macro postgres__micros_between(a, b) -%}
    cast(round((extract(epoch from ({{ b }})) - extract(epoch from ({{ a }}))) * 1000000) as bigint)
{%- endmacro %}

{#- Hours between two timestamps (b - a, b not before a), rounded half up to the hundredth, as
    decimal(12, 2): integer arithmetic on the microseconds, identical on both targets. -#}
{% macro hours_between_2dp(a, b) -%}
    {{ return(adapter.dispatch('hours_between_2dp')(a, b)) }}
{%- endmacro %}
{% macro default__hours_between_2dp(a, b) -%}
    cast(cast(({{ micros_between(a, b) }} + 18000000) // 36000000 as decimal(14, 0)) * 0.01 as decimal(12, 2))
{%- endmacro %}
{% macro postgres__hours_between_2dp(a, b) -%}
    cast(cast(({{ micros_between(a, b) }} + 18000000) / 36000000 as decimal(14, 0)) * 0.01 as decimal(12, 2))
{%- endmacro %}

{#- Integer division of two integers, truncating (DuckDB's / of integers is a double). -#}
{% macro int_div(a, b) -%}
    {{ return(adapter.dispatch('int_div')(a, b)) }}
{%- endmacro %}
{% macro default__int_div(a, b) -%}
    (({{ a }}) // ({{ b }}))
{%- endmacro %}
{% macro postgres__int_div(a, b) -%}
    (({{ a }}) / ({{ b }}))
{%- endmacro %}

{#- The value of a query-string parameter of a URL (null when absent), e.g. utm_source. -#}
{% macro url_param(url, name) -%}
    {{ return(adapter.dispatch('url_param')(url, name)) }}
{%- endmacro %}
{% macro default__url_param(url, name) -%}
    nullif(regexp_extract({{ url }}, '[?&]{{ name }}=([^&#]*)', 1), '')
{%- endmacro %}
{% macro postgres__url_param(url, name) -%}
    nullif(substring({{ url }} from '[?&]{{ name }}=([^&#]*)'), '')
{%- endmacro %}

{#- A top-level text field of a JSON(B) column (null when absent). -#}
{% macro json_text(col, key) -%}
    {{ return(adapter.dispatch('json_text')(col, key)) }}
{%- endmacro %}
{% macro default__json_text(col, key) -%}
    json_extract_string({{ col }}, '$.{{ key }}')
{%- endmacro %}
{% macro postgres__json_text(col, key) -%}
    (cast({{ col }} as jsonb) ->> '{{ key }}')
{%- endmacro %}

{#- True when the regular expression matches somewhere in the text (null for null text). -#}
{% macro regex_found(text, pattern) -%}
    {{ return(adapter.dispatch('regex_found')(text, pattern)) }}
{%- endmacro %}
{% macro default__regex_found(text, pattern) -%}
    regexp_matches({{ text }}, '{{ pattern }}')
{%- endmacro %}
{% macro postgres__regex_found(text, pattern) -%}
    ({{ text }} ~ '{{ pattern }}')
{%- endmacro %}

{#- A timestamp n whole days later (n a number known when the SQL is compiled, e.g. a var). -#}
{% macro plus_days(ts, n) -%}
    ({{ ts }} + interval '{{ n | int }} days')
{%- endmacro %}
