{#-
  The account matching key of a company name (int_account_members), the same on both targets: lower
  case; '&' read as 'and'; every run of characters other than a-z and 0-9 one space; a leading 'the'
  dropped; trailing legal-form words dropped however many (inc, incorporated, llc, l l c, ltd, limited,
  co, corp, corporation, company, plc, gmbh, lp, llp, pllc, pc); then the spaces removed. Empty -> null.
  'ACME Roofing, Inc.', 'Acme Roofing LLC' and 'acme-roofing' are one key ('acmeroofing'); 'The Smith &
  Sons Co.' and 'Smith and Sons' another ('smithandsons').
-#}
{% macro company_name_key(col) -%}
    nullif(replace(trim(
        regexp_replace(
            regexp_replace(
                ' ' || regexp_replace(replace(lower({{ col }}), '&', ' and '), '[^a-z0-9]+', ' ', 'g') || ' ',
                '^ +the ', ' ', 'g'),
            '( (inc|incorporated|llc|l l c|ltd|limited|co|corp|corporation|company|plc|gmbh|lp|llp|pllc|pc))+ +$', ' ', 'g')
    ), ' ', ''), '')
{%- endmacro %}

{#- The domain of an e-mail address, lower case, trimmed (null without an @ or a dot after it). -#}
{% macro email_domain(col) -%}
    case when {{ col }} like '%@%.%' then lower(trim(split_part({{ col }}, '@', 2))) end
{%- endmacro %}

{#- A job title that makes its holder a decision maker for an account (owner, founder, president, principal,
    partner, a chief officer (ceo, cfo, coo, ...), a vice president, a general manager, a director). -#}
{% macro is_decision_maker_title(col) -%}
    coalesce({{ regex_found('lower(' ~ col ~ ')', "(^|[^a-z])(owner|founder|president|principal|partner|chief|ceo|cfo|coo|cto|vp|vice president|general manager|director)([^a-z]|$)") }}, false)
{%- endmacro %}
