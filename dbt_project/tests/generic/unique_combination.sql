{#- No two rows share the same values of `columns` (the grain of a model); dbt_utils is not available here.

  In a PostgreSQL delta build of an incremental model (dbt_project/macros/wap_delta.sql) the model is a view:
  the published rows not tombstoned, plus this build's delta. The published rows passed this test when they
  were built, and a publish changes them only by this delta, so what this build can add is a duplicate inside
  the delta, or a delta row whose values a published row not tombstoned still holds (found through the
  published table's index on them). That is what is checked then: it follows the day's change, where the view
  read whole costs as much as the table (7.5–8.0 s of a one-day build at the medium tier on
  fct_crm_activities). A first, full or DuckDB build checks the whole model, as before. -#}
{% test unique_combination(model, columns) %}
{%- set parts = wap_delta_parts(model) -%}
{%- if parts is none %}
select {{ columns | join(', ') }}, count(*) as n
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{%- else %}
select {{ columns | join(', ') }}, count(*) as n
from {{ parts.delta }}
group by {{ columns | join(', ') }}
having count(*) > 1
union all
select {% for c in columns %}d.{{ c }}, {% endfor %}2 as n
from {{ parts.delta }} as d
join {{ parts.published }} as p
    on {% for c in columns %}p.{{ c }} = d.{{ c }}{% if not loop.last %} and {% endif %}{% endfor %}
where not exists (
    select 1 from {{ parts.gone }} as g
    where {% for c in parts.grain %}g.{{ c }} = p.{{ c }}{% if not loop.last %} and {% endif %}{% endfor %}
)
{%- endif %}
{% endtest %}
