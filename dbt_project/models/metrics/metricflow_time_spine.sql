{#- One row per day, 2000-01-01 .. 2040-12-31: MetricFlow's time spine (the day grain its metrics join to). -#}
{{ config(materialized='table', schema='intermediate') }}

select date_day from ({{ day_series("'2000-01-01'", "'2040-12-31'") }}) as days
