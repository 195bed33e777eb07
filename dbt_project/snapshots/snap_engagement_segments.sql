{#- Segment membership over time: a new version of a lead or contact each time a refresh finds it in another
    engagement segment (check strategy on segment), with the as-of day it was found on. -#}
{% snapshot snap_engagement_segments %}

{{ config(
    unique_key='member_key',
    strategy='check',
    check_cols=['segment'],
    hard_deletes='invalidate',
) }}

select member_key, record_type, record_id, company_id, segment, as_of_date
from {{ ref('int_engagement_segments') }}

{% endsnapshot %}
