{{ config(meta={'dagster': {'ref': {'name': 'lead_scores'}}}, severity='warn') }}

-- Invariant: for a live lead, the operational trigger's own arithmetic over the lead's live
-- activities (only the activity spellings the trigger knows) reproduces leads.lead_score as the
-- trigger left it. A warning, not a block: an activity committed between the extraction of leads
-- and of lead_activities makes a lead disagree until the next run. Returns the leads that disagree.
select lead_id, operational_lead_score, operational_recomputed_score
from {{ ref('lead_scores') }}
where not is_deleted
    and operational_lead_score <> operational_recomputed_score
