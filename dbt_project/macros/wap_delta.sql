{#-
  Write–audit–publish by delta for the incremental models on PostgreSQL (quality/wap.py).

  A PostgreSQL build goes to shadow schemas (<schema>__build). An incremental model whose published
  table exists is not copied there: quality/wap.py `pg_start` gives the shadow an empty table of the
  same columns (dbt's delete+insert writes this build's rows into it) and a tombstone table
  `<model>__gone` (the grain of every published row this build replaces or deletes). The model reads
  its previous state (high-water marks) from the published table (`incremental_state`), deletes with
  `incremental_delete`, and its last post-hook (`wap_delta_finish`) renames the shadow table to
  `<model>__delta` and puts a view in its place: the published rows not tombstoned, plus the delta.
  What reads the model in the build (later models, tests) reads that view: the model's new state.
  `pg_publish` applies the delta to the published table (DELETE the tombstoned rows, INSERT the delta)
  and moves it into the shadow schema, in the transaction that renames the shadow schemas in. A
  failed build never wrote the published table. Everywhere else (DuckDB, a first or a full build)
  these macros are `this` and plain deletes.
-#}

{#- The shadow's tombstone table of the model being built (or of `relation`, for a test of it), or none when it
    is built whole. -#}
{% macro wap_delta_tombstones(relation=none) -%}
    {%- set relation = relation if relation is not none else this -%}
    {%- set suffix = env_var('CRM_SCHEMA_SUFFIX', '') -%}
    {%- if execute and target.type == 'postgres' and suffix and relation.schema and relation.schema.endswith(suffix) -%}
        {{ return(adapter.get_relation(database=relation.database, schema=relation.schema,
                                       identifier=relation.identifier ~ '__gone')) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}

{#- The model's (or `relation`'s) state before this build: the published table in a delta build, else itself. -#}
{% macro incremental_state(relation=none) -%}
    {%- set relation = relation if relation is not none else this -%}
    {%- if wap_delta_tombstones(relation) is not none -%}
        {%- set suffix = env_var('CRM_SCHEMA_SUFFIX', '') -%}
        {{ return(api.Relation.create(database=relation.database,
                                      schema=relation.schema[:(relation.schema | length) - (suffix | length)],
                                      identifier=relation.identifier, type='table')) }}
    {%- endif -%}
    {{ return(relation) }}
{%- endmacro %}

{#- The columns that tell one row of the model from another (meta.grain, else the merge key). -#}
{% macro wap_grain() -%}
    {%- set grain = (config.get('meta') or {}).get('grain') or config.get('unique_key') -%}
    {{ return([grain] if grain is string else grain) }}
{%- endmacro %}

{#- Delete the model's rows that match `condition`: the rows this build wrote, and in a delta build the
    published rows too (as tombstones, applied when the build is published). -#}
{% macro incremental_delete(condition) -%}
    delete from {{ this }} where {{ condition }}
    {%- set gone = wap_delta_tombstones() -%}
    {%- if gone is not none %};
    insert into {{ gone }} select {{ wap_grain() | join(', ') }} from {{ incremental_state() }} where {{ condition }}
    {%- endif -%}
{%- endmacro %}

{#- The model's last post-hook: in a delta build, the published rows its merge key replaced become
    tombstones, and the model's name becomes a view of its new state. -#}
{% macro wap_delta_finish() -%}
    {%- set gone = wap_delta_tombstones() -%}
    {%- if gone is not none -%}
        {%- set grain = wap_grain() -%}
        {%- set key = config.get('unique_key') -%}
        {%- set key = [key] if key is string else key -%}
        {%- set published = incremental_state() -%}
        {%- set delta = this.incorporate(path={'identifier': this.identifier ~ '__delta'}) -%}
        insert into {{ gone }}
        select {{ grain | join(', ') }} from {{ published }}
        where ({{ key | join(', ') }}) in (select {{ key | join(', ') }} from {{ this }});
        analyze {{ gone }};
        alter table {{ this }} rename to {{ adapter.quote(delta.identifier) }};
        create view {{ this }} as
        select * from {{ published }} as p
        where not exists (
            select 1 from {{ gone }} as g
            where {% for c in grain %}g.{{ c }} = p.{{ c }}{% if not loop.last %} and {% endif %}{% endfor %}
        )
        union all
        select * from {{ delta }}
    {%- endif -%}
{%- endmacro %}

{#- For a test of `relation` in a PostgreSQL delta build: the published table, the tombstones, the delta and the
    grain (the tombstones' columns), or none when the relation is built whole (DuckDB, a first or full build,
    any other model). -#}
{% macro wap_delta_parts(relation) -%}
    {%- set gone = wap_delta_tombstones(relation) if relation.schema is defined else none -%}
    {%- if gone is none -%}
        {{ return(none) }}
    {%- endif -%}
    {#- the delta is renamed into being by the model's post-hook, after dbt cached the schema: asked of the catalogue -#}
    {%- set delta = api.Relation.create(database=relation.database, schema=relation.schema,
                                        identifier=relation.identifier ~ '__delta', type='table') -%}
    {%- if not run_query("select to_regclass('" ~ delta.include(database=false) ~ "') is not null").columns[0].values()[0] -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set grain = adapter.get_columns_in_relation(gone) | map(attribute='name') | list -%}
    {{ return({'published': incremental_state(relation), 'gone': gone, 'delta': delta, 'grain': grain}) }}
{%- endmacro %}
