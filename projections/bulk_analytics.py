"""The analytics read model built in bulk: set-based SQL over the relation ``events``
(see :mod:`projections.bulk`) that gives exactly the rows the handlers of
:class:`projections.analytics.Analytics` give, state included (``load()`` reads the
deals, stages and interactions back from these very tables).

- ``analytics_stages``: a pipeline's stage list is a fold over its events (created;
  a stage inserted at a position; renamed; re-weighted; reordered), done with
  ``list_reduce`` over the pipeline's events in position order. Stages are never
  removed, so the final list holds every row the handlers ever wrote, each with the
  order, name and probability of the last write.
- ``analytics_transitions``: the deal events that move a deal, each with the deal's
  place before it, the owner at the time and the time of the previous transition
  (``last_value … IGNORE NULLS`` over the deal's earlier events).
- ``analytics_deals``: each deal's last value of every field (``arg_max`` by position
  over the events that set it).
- ``analytics_interactions``: every logged interaction not retracted, moved by its
  last correction of ``occurred_at``.

The JSON of a deal or interaction event is parsed once (``json_extract_string`` with
a list of paths); the deal events are parsed into a temporary table that both deal
tables read, dropped before the build returns.

Times are cast from the ISO strings as the handlers' rows are (``TIMESTAMPTZ``);
months, quarters and days are cut in UTC whatever the session's time zone.
"""

from __future__ import annotations

import duckdb

MACROS = (
    # A TIMESTAMPTZ -> its UTC wall time (a TIMESTAMP) without the session's TimeZone,
    # for cutting months, quarters and days as the handlers do (``astimezone(UTC)``).
    "CREATE OR REPLACE TEMP MACRO analytics_utc(t) AS make_timestamp(epoch_us(t))",
    # ``(b - a).total_seconds()`` of two TIMESTAMPTZ: whole microseconds over a million,
    # one correctly rounded division, as Python computes it.
    "CREATE OR REPLACE TEMP MACRO analytics_seconds(a, b) AS "
    "CAST(epoch_us(b) - epoch_us(a) AS DOUBLE) / 1000000.0",
)

STAGES_SQL = """
INSERT INTO analytics_stages (pipeline_id, stage_id, ord, name, probability)
WITH pipeline_events AS (
    -- One change per pipeline event, with what its kind needs.
    SELECT
        aggregate_id AS pipeline_id,
        position,
        {
            'name': name,
            -- Created: every stage; StageAdded: the one stage (a list of one).
            'stages': CASE name
                WHEN 'Pipeline.Created' THEN list_transform(
                    CAST(json_extract(state, '$.stages[*]._data_') AS JSON[]),
                    lambda s: {
                        'id': canonical_uuid(json_extract_string(s, '$.id._data_')),
                        'name': json_extract_string(s, '$.name'),
                        'probability': CAST(json_extract(s, '$.probability') AS INTEGER)})
                WHEN 'Pipeline.StageAdded' THEN [{
                    'id': canonical_uuid(
                        json_extract_string(state, '$.stage._data_.id._data_')),
                    'name': json_extract_string(state, '$.stage._data_.name'),
                    'probability': CAST(
                        json_extract(state, '$.stage._data_.probability') AS INTEGER)}]
            END,
            'at_index': CAST(json_extract(state, '$.position') AS INTEGER),
            'stage_id': canonical_uuid(json_extract_string(state, '$.stage_id._data_')),
            'new_name': json_extract_string(state, '$.name'),
            'new_probability': CAST(json_extract(state, '$.probability') AS INTEGER),
            'stage_order': list_transform(
                json_extract_string(state, '$.order[*]._data_'),
                lambda h: canonical_uuid(h))
        } AS change
    FROM events
    WHERE name IN ('Pipeline.Created', 'Pipeline.StageAdded', 'Pipeline.StageRenamed',
                   'Pipeline.StageReweighted', 'Pipeline.StagesReordered')
),
pipelines AS (
    SELECT pipeline_id, list_reduce(
        list(change ORDER BY position),
        lambda acc, c: CASE c.name
            -- Created: the list is the event's stages.
            WHEN 'Pipeline.Created' THEN c.stages
            -- StageAdded: ``list.insert(position, stage)``.
            WHEN 'Pipeline.StageAdded' THEN list_concat(
                acc[1:c.at_index], c.stages, acc[c.at_index + 1:])
            -- Renamed, Reweighted: the stage with that id, if the pipeline has it.
            WHEN 'Pipeline.StageRenamed' THEN list_transform(acc, lambda s:
                CASE WHEN s.id = c.stage_id
                THEN {'id': s.id, 'name': c.new_name, 'probability': s.probability}
                ELSE s END)
            WHEN 'Pipeline.StageReweighted' THEN list_transform(acc, lambda s:
                CASE WHEN s.id = c.stage_id
                THEN {'id': s.id, 'name': s.name, 'probability': c.new_probability}
                ELSE s END)
            -- Reordered: ``sort`` (stable) by the stage's index in the new order (the
            -- last, if listed twice), the stages it does not list after all others.
            ELSE list_transform(
                list_sort(list_transform(acc, lambda s, i: {
                    'rank': coalesce(
                        len(c.stage_order)
                            - list_position(list_reverse(c.stage_order), s.id),
                        len(c.stage_order)),
                    'index': i,
                    'stage': s})),
                lambda r: r.stage)
        END,
        CAST([] AS STRUCT(id VARCHAR, name VARCHAR, probability INTEGER)[])
    ) AS stages
    FROM pipeline_events
    GROUP BY pipeline_id
)
SELECT
    CAST(pipeline_id AS UUID),
    CAST(s.stage.id AS UUID),
    s.ord - 1,
    s.stage.name,
    s.stage.probability
FROM pipelines, unnest(list_transform(stages, lambda st, i: {'stage': st, 'ord': i})) AS u(s)
"""

#: The deal events, one row each, with what the event sets (NULL: leaves it as it
#: was) and the transition it is (NULL: none). The expected close date, which an event
#: may set to NULL, travels in a struct: NULL only when the event does not set it.
DEAL_CHANGES_SQL = """
CREATE OR REPLACE TEMP TABLE analytics_bulk_deal_changes AS
WITH deal_events AS (
    SELECT
        aggregate_id AS deal_id,
        position,
        name,
        CAST(recorded_at AS TIMESTAMPTZ) AS event_at,
        -- Every field any deal event sets, the JSON parsed once (missing: NULL).
        json_extract_string(state, [
            '$.pipeline_id._data_', '$.stage_id._data_', '$.owner_id._data_',
            '$.amount._data_', '$.currency', '$.expected_close_date._data_']) AS f
    FROM events
    WHERE name IN ('Deal.Opened', 'Deal.StageChanged', 'Deal.Won', 'Deal.Lost',
                   'Deal.Reopened', 'Deal.AmountChanged', 'Deal.OwnerChanged',
                   'Deal.CloseDateChanged')
)
SELECT
    deal_id,
    position,
    event_at,
    CASE name
        WHEN 'Deal.Opened' THEN 'opened'
        WHEN 'Deal.StageChanged' THEN 'moved'
        WHEN 'Deal.Won' THEN 'won'
        WHEN 'Deal.Lost' THEN 'lost'
        WHEN 'Deal.Reopened' THEN 'reopened'
    END AS kind,
    CASE WHEN name = 'Deal.Opened' THEN canonical_uuid(f[1]) END AS pipeline_id,
    CASE WHEN name IN ('Deal.Opened', 'Deal.StageChanged', 'Deal.Reopened')
        THEN canonical_uuid(f[2]) END AS stage_id,
    CASE name
        WHEN 'Deal.Opened' THEN 'open'
        WHEN 'Deal.Reopened' THEN 'open'
        WHEN 'Deal.Won' THEN 'won'
        WHEN 'Deal.Lost' THEN 'lost'
    END AS status,
    CASE WHEN name IN ('Deal.Opened', 'Deal.OwnerChanged')
        THEN canonical_uuid(f[3]) END AS owner_id,
    CASE WHEN name IN ('Deal.Opened', 'Deal.AmountChanged') THEN f[4] END AS amount,
    CASE WHEN name IN ('Deal.Opened', 'Deal.AmountChanged') THEN f[5] END AS currency,
    CASE WHEN name IN ('Deal.Opened', 'Deal.CloseDateChanged')
        THEN {'date': f[6]} END AS close_date
FROM deal_events
"""

TRANSITIONS_SQL = """
INSERT INTO analytics_transitions
    (position, deal_id, pipeline_id, kind, from_stage, to_stage, "at",
     seconds_in_previous, owner_id)
WITH moves AS (
    -- Only transitions and owner changes matter here; the other events change neither
    -- the place of a deal nor its owner.
    SELECT
        deal_id, position, event_at, kind, stage_id,
        last_value(pipeline_id IGNORE NULLS) OVER upto AS pipeline_id,
        last_value(owner_id IGNORE NULLS) OVER upto AS owner_id,
        -- The deal as it was before the event: its stage and status, and when it
        -- entered them (the time of its previous transition).
        last_value(stage_id IGNORE NULLS) OVER before AS stage_before,
        last_value(status IGNORE NULLS) OVER before AS status_before,
        last_value(CASE WHEN kind IS NOT NULL THEN event_at END IGNORE NULLS) OVER before
            AS entered_before
    FROM analytics_bulk_deal_changes
    WHERE kind IS NOT NULL OR owner_id IS NOT NULL
    WINDOW
        upto AS (PARTITION BY deal_id ORDER BY position
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
        before AS (PARTITION BY deal_id ORDER BY position
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
)
SELECT
    position,
    CAST(deal_id AS UUID),
    CAST(pipeline_id AS UUID),
    kind,
    -- Opening enters the first stage from nowhere; any other transition leaves the
    -- deal's place: its stage when open, else its outcome.
    CASE WHEN kind <> 'opened' THEN
        CASE WHEN status_before = 'open' THEN stage_before ELSE status_before END
    END,
    CASE WHEN kind IN ('won', 'lost') THEN kind ELSE stage_id END,
    event_at,
    CASE WHEN kind <> 'opened' THEN analytics_seconds(entered_before, event_at) END,
    -- The owner at the time.
    CAST(owner_id AS UUID)
FROM moves
WHERE kind IS NOT NULL
"""

DEALS_SQL = """
INSERT INTO analytics_deals
    (deal_id, pipeline_id, stage_id, status, owner_id, amount, currency,
     expected_close_date, expected_close_month, opened_at, entered_at, closed_at,
     closed_month, closed_quarter, cycle_seconds)
WITH deals AS (
    -- Each field's last value: ``arg_max`` skips the events that do not set it.
    SELECT
        deal_id,
        arg_max(pipeline_id, position) AS pipeline_id,
        arg_max(stage_id, position) AS stage_id,
        arg_max(status, position) AS status,
        arg_max(owner_id, position) AS owner_id,
        arg_max(amount, position) AS amount,
        arg_max(currency, position) AS currency,
        arg_max(close_date, position).date AS expected_close_date,
        arg_max(event_at, position) FILTER (kind = 'opened') AS opened_at,
        -- When it entered its stage, or its outcome: its last transition.
        arg_max(event_at, position) FILTER (kind IS NOT NULL) AS entered_at,
        -- When its status last changed: when it was won or lost, if it still is.
        arg_max(event_at, position) FILTER (status IS NOT NULL) AS status_at
    FROM analytics_bulk_deal_changes
    GROUP BY deal_id
),
closed AS (
    -- Closed when won or lost, while it stays so: reopening forgets the close.
    SELECT *, CASE WHEN status <> 'open' THEN status_at END AS closed_at FROM deals
)
SELECT
    CAST(deal_id AS UUID),
    CAST(pipeline_id AS UUID),
    CAST(stage_id AS UUID),
    status,
    CAST(owner_id AS UUID),
    CAST(amount AS DECIMAL(19, 4)),
    currency,
    CAST(expected_close_date AS DATE),
    -- ``month_of`` an ISO date (``YYYY-MM-DD``): its first seven characters.
    substr(expected_close_date, 1, 7),
    opened_at,
    entered_at,
    closed_at,
    printf('%04d-%02d', year(analytics_utc(closed_at)), month(analytics_utc(closed_at))),
    printf('%04d-Q%d', year(analytics_utc(closed_at)), quarter(analytics_utc(closed_at))),
    analytics_seconds(opened_at, closed_at)
FROM closed
"""

#: An interaction is logged by its first event (the aggregate's creation), so every
#: correction or retraction of it comes after; a retraction removes it for good (the
#: handlers ignore the corrections after it).
INTERACTIONS_SQL = """
INSERT INTO analytics_interactions (interaction_id, user_id, kind, occurred_at, day)
WITH logged AS (
    SELECT
        aggregate_id AS interaction_id,
        CASE name
            WHEN 'Interaction.CallLogged' THEN 'call'
            WHEN 'Interaction.EmailLogged' THEN 'email'
            WHEN 'Interaction.MeetingLogged' THEN 'meeting'
            WHEN 'Interaction.NoteLogged' THEN 'note'
            WHEN 'Interaction.SmsLogged' THEN 'sms'
        END AS kind,
        -- The JSON parsed once: who logged it, when it happened.
        json_extract_string(state, ['$.logged_by._data_', '$.occurred_at._data_']) AS f
    FROM events
    WHERE name IN ('Interaction.CallLogged', 'Interaction.EmailLogged',
                   'Interaction.MeetingLogged', 'Interaction.NoteLogged',
                   'Interaction.SmsLogged')
),
corrected AS (
    -- The last correction that moves it (``arg_max`` skips those without the field).
    SELECT
        aggregate_id AS interaction_id,
        arg_max(json_extract_string(state, '$.changes.occurred_at._data_'), position)
            AS occurred_at
    FROM events
    WHERE name = 'Interaction.Corrected'
    GROUP BY aggregate_id
),
interactions AS (
    SELECT
        l.interaction_id,
        -- ``logged_by`` is None only for the system actor.
        coalesce(canonical_uuid(l.f[1]), 'system') AS user_id,
        l.kind,
        CAST(coalesce(c.occurred_at, l.f[2]) AS TIMESTAMPTZ) AS occurred_at
    FROM logged AS l LEFT JOIN corrected AS c USING (interaction_id)
    WHERE l.interaction_id NOT IN (
        SELECT aggregate_id FROM events WHERE name = 'Interaction.Retracted'
    )
)
SELECT
    CAST(interaction_id AS UUID),
    user_id,
    kind,
    occurred_at,
    CAST(analytics_utc(occurred_at) AS DATE)
FROM interactions
"""


def build(con: duckdb.DuckDBPyConnection) -> None:
    """Fill the (empty) analytics tables from ``events``, in the caller's transaction."""
    for macro in MACROS:
        con.execute(macro)
    con.execute(STAGES_SQL)
    con.execute(DEAL_CHANGES_SQL)
    try:
        con.execute(TRANSITIONS_SQL)
        con.execute(DEALS_SQL)
    finally:
        con.execute("DROP TABLE IF EXISTS analytics_bulk_deal_changes")
    con.execute(INTERACTIONS_SQL)
