{#-
  A raw table with the contract's columns, whatever the source had (the source declarations in
  _builddesk__sources.yml are generated from the contract package): a column raw holds is selected
  as it is; one raw holds under a known rename (meta.renames: industry_type for industry, name for
  tasks.title, ...) is selected under the contract's name; an optional one raw lacks is null of the
  contract's type, a required one (every known schema version has it) fails the model, naming it.
  A raw table that does not exist (the source has no such table) gives no rows with the same columns. Staging models select from this instead of source() directly.
-#}
{% macro contract_source(table) -%}
    {%- set rel = source('builddesk', table) -%}
    {%- if not execute -%}
        select * from {{ rel }}
    {%- else -%}
        {%- set existing = adapter.get_relation(database=rel.database, schema=rel.schema, identifier=rel.identifier) -%}
        {%- set have = [] -%}
        {%- set textual = [] -%}
        {%- if existing is not none -%}
            {%- for c in adapter.get_columns_in_relation(existing) -%}
                {%- do have.append(c.name | lower) -%}
                {%- if c.is_string() -%}{%- do textual.append(c.name | lower) -%}{%- endif -%}
            {%- endfor -%}
        {%- endif -%}
        {%- set node = graph.sources['source.' ~ project_name ~ '.builddesk.' ~ table] -%}
        select
        {%- for col in node.columns.values() %}
            {% set found = [] -%}
            {%- for r in col.meta.get('renames', []) if r in have -%}{%- do found.append(r) -%}{%- endfor -%}
            {%- if col.name in have and col.name in textual and col.data_type | upper not in ('TEXT', 'INET', 'JSONB') -%}
                {#- the source turned the column into text (drift): back to the contract's type; values
                    that were no number never reached raw (the gate's range rule quarantines them) -#}
                cast({{ adapter.quote(col.name) }} as {{ contract_type(col.data_type) }}) as {{ adapter.quote(col.name) }}
            {%- elif col.name in have -%}
                {{ adapter.quote(col.name) }}
            {%- elif found -%}
                {{ adapter.quote(found[0]) }} as {{ adapter.quote(col.name) }}
            {%- elif existing is not none and col.meta.get('required') -%}
                {{ exceptions.raise_compiler_error("raw." ~ table ~ " has no column " ~ col.name ~ ", which every known version of BuildDesk's schema has and the warehouse requires: check the source table, or declare the column optional or renamed in contract/ (then python -m contract.dbt_sources)") }}
            {%- else -%}
                cast(null as {{ contract_type(col.data_type) }}) as {{ adapter.quote(col.name) }}
            {%- endif -%},
        {%- endfor %}
        {%- if existing is not none %}
            _ingested_at,
            _batch_id,
            _deleted_at
        from {{ rel }}
        {%- else %}
            cast(null as {{ contract_type('TIMESTAMPTZ') }}) as _ingested_at,
            cast(null as {{ dbt.type_string() }}) as _batch_id,
            cast(null as {{ contract_type('TIMESTAMPTZ') }}) as _deleted_at
        where 1 = 0
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- A contract column type (PostgreSQL's spelling) as the warehouse spells it. -#}
{% macro contract_type(t) -%}
    {{ return(adapter.dispatch('contract_type')(t)) }}
{%- endmacro %}
{% macro default__contract_type(t) -%}
    {%- set u = t | upper -%}
    {%- if u == 'JSONB' -%}json{%- elif u == 'INET' -%}varchar{%- else -%}{{ t }}{%- endif -%}
{%- endmacro %}
{% macro postgres__contract_type(t) -%}
    {{ t }}
{%- endmacro %}
