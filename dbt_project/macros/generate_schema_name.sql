{#- Schemas named exactly as in PRODUCT.md (staging, intermediate, marts), not <target>_<custom>.
    CRM_SCHEMA_SUFFIX (set by the PostgreSQL write–audit–publish build, quality/wap.py) sends the
    whole build to shadow schemas <schema>__build, renamed in only when every test passed. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{{ env_var('CRM_SCHEMA_SUFFIX', '') }}{%- endif -%}
{%- endmacro %}
