{#-
  One row per stage visit of a live deal, from deal_stage_history up to the end of the as-of day:
  the move into a stage opens the visit, the deal's next move closes it. Direction compares the
  stage orders of the move.
-#}

with

as_of as (

    select * from {{ ref('int_as_of') }}

),

moves as (

    select * from {{ ref('stg_builddesk__deal_stage_history') }}
    where not is_deleted
        and moved_at < (select as_of_end_utc from as_of)

),

stages as (

    select * from {{ ref('stg_builddesk__pipeline_stages') }}

),

deals as (

    select deal_id, company_id from {{ ref('stg_builddesk__deals') }}
    where not is_deleted

),

ordered as (

    select
        moves.stage_move_id,
        moves.deal_id,
        deals.company_id,
        moves.to_stage_id as stage_id,
        moves.from_stage_id,
        moves.moved_at as entered_at,
        lead(moves.moved_at) over (partition by moves.deal_id order by moves.moved_at, moves.stage_move_id) as exited_at,
        row_number() over (partition by moves.deal_id order by moves.moved_at, moves.stage_move_id) as visit_number,
        moves.moved_by,
        moves.auto_moved,
        moves.value_after as value_at_entry,
        moves.probability_after as probability_at_entry,
        moves.changed_at
    from moves
    inner join deals on deals.deal_id = moves.deal_id

),

final as (

    select
        ordered.stage_move_id,
        ordered.deal_id,
        ordered.company_id,
        ordered.stage_id,
        to_stage.name as stage_name,
        to_stage.stage_order,
        to_stage.template_id,
        to_stage.is_won_stage,
        to_stage.is_lost_stage,
        ordered.from_stage_id,
        from_stage.stage_order as from_stage_order,
        ordered.visit_number,
        ordered.entered_at,
        ordered.exited_at,
        ordered.exited_at is null as is_current,
        case
            when ordered.from_stage_id is null then 'created'
            when to_stage.stage_order > from_stage.stage_order then 'forward'
            when to_stage.stage_order < from_stage.stage_order then 'backward'
            else 'same'
        end as direction,
        ordered.moved_by,
        ordered.auto_moved,
        ordered.value_at_entry,
        coalesce(ordered.probability_at_entry, to_stage.probability_weight) as probability_at_entry,
        ordered.changed_at
    from ordered
    left join stages as to_stage on to_stage.stage_id = ordered.stage_id
    left join stages as from_stage on from_stage.stage_id = ordered.from_stage_id

)

select * from final
