"""The pipeline board (:class:`projections.board.Board`) built in bulk: set-based SQL
over the relation ``events`` (see :mod:`projections.bulk`) that fills its tables exactly
as the handlers would, state tables included.

What the handlers keep in memory is a function of the final state of each aggregate,
which is what makes a set-based build possible:

- a pipeline's name is its last ``Created``/``Renamed``; its stages are the list the
  pipeline events edit in turn (the only sequential part: a recursive CTE over the few
  pipeline events), and a stage's row is the one written last;
- an account's name is its last ``Registered``/``DetailsChanged``; a deal carries the
  current name of its account (the handlers rewrite the deals of a renamed account,
  and a deal opened before its account was named takes the name when it comes);
- a deal's fields are the last event of a deal (after it was opened) that sets each
  of them; it is on the board (``board_deals``) when its last status event is
  ``Opened`` or ``Reopened``, in ``board_closed_deals`` otherwise;
- an interaction is kept unless retracted, with its last deal and time (``Logged``,
  then the ``Corrected`` events whose ``changes`` name the field); a deal's last
  interaction is the latest time among the kept interactions linked to it, which is
  the invariant the handlers maintain incrementally;
- the totals count and sum the open deals per stage, owner and currency.

The tables are filled in dependency order (accounts and interactions before the deals,
the open deals before the totals) so later statements read the earlier tables.
"""

from __future__ import annotations

import duckdb

#: The deal events the board handles.
_DEAL_EVENTS = (
    "'Deal.Opened', 'Deal.StageChanged', 'Deal.Retitled', 'Deal.AmountChanged', "
    "'Deal.OwnerChanged', 'Deal.CloseDateChanged', 'Deal.ContactsChanged', "
    "'Deal.Won', 'Deal.Lost', 'Deal.Reopened'"
)
_LOGGED = (
    "'Interaction.CallLogged', 'Interaction.EmailLogged', 'Interaction.MeetingLogged', "
    "'Interaction.NoteLogged', 'Interaction.SmsLogged'"
)

PIPELINES = """
INSERT INTO board_pipelines
SELECT CAST(aggregate_id AS UUID), arg_max(state ->> '$.name', position)
FROM events
WHERE name IN ('Pipeline.Created', 'Pipeline.Renamed')
GROUP BY aggregate_id
"""

#: A stage as the recursive CTE carries it (``Stage`` is stored as {"_type_": "stage",
#: "_data_": {"id": <uuid_hex>, "name": …, "probability": …}}).
_STAGE = "STRUCT(stage_id VARCHAR, name VARCHAR, probability INTEGER)"
_STAGE_OF = (
    "{{'stage_id': {s} ->> '$.id._data_', 'name': {s} ->> '$.name', "
    "'probability': CAST({s} ->> '$.probability' AS INTEGER)}}"
)

# Each pipeline's stage list, edited by its events in turn as the handlers edit it:
# ``Created`` sets it, ``StageAdded`` inserts at a position (a list insert: past the end
# appends), ``StagesReordered`` keeps the known stages in the new order, a rename or a
# re-weight changes one stage (and writes nothing when the stage is unknown). Every
# event that writes rewrites all the pipeline's stages with their positions, so a
# stage's row is the one of the last writing event whose list holds it.
STAGES = f"""
INSERT INTO board_stages
WITH RECURSIVE steps AS (
    SELECT
        aggregate_id AS pipeline_id,
        position,
        name,
        row_number() OVER (PARTITION BY aggregate_id ORDER BY position) AS step,
        CASE name
            WHEN 'Pipeline.Created' THEN list_transform(
                json_extract(state, '$.stages[*]._data_'),
                lambda s: {_STAGE_OF.format(s="s")})
            WHEN 'Pipeline.StageAdded' THEN [{_STAGE_OF.format(s="(state -> '$.stage._data_')")}]
        END AS added,
        CAST(state ->> '$.position' AS BIGINT) AS at,
        json_extract_string(state, '$.order[*]._data_') AS "order",
        state ->> '$.stage_id._data_' AS stage_id,
        state ->> '$.name' AS new_name,
        CAST(state ->> '$.probability' AS INTEGER) AS probability
    FROM events
    WHERE name IN ('Pipeline.Created', 'Pipeline.StageAdded', 'Pipeline.StageRenamed',
                   'Pipeline.StageReweighted', 'Pipeline.StagesReordered')
),
lists(pipeline_id, step, position, stages, wrote) AS (
    SELECT DISTINCT pipeline_id, 0, 0, CAST([] AS {_STAGE}[]), false
    FROM steps
    UNION ALL
    SELECT
        l.pipeline_id,
        s.step,
        s.position,
        CASE s.name
            WHEN 'Pipeline.Created' THEN s.added
            WHEN 'Pipeline.StageAdded'
                THEN list_concat(l.stages[1:s.at], s.added, l.stages[s.at + 1:])
            WHEN 'Pipeline.StagesReordered' THEN list_filter(
                list_transform(
                    s."order",
                    lambda id: list_filter(l.stages, lambda t: t.stage_id = id)[1]),
                lambda t: t IS NOT NULL)
            WHEN 'Pipeline.StageRenamed' THEN list_transform(
                l.stages,
                lambda t: CASE WHEN t.stage_id = s.stage_id
                    THEN struct_pack(stage_id := t.stage_id, name := s.new_name,
                                     probability := t.probability)
                    ELSE t END)
            ELSE list_transform(
                l.stages,
                lambda t: CASE WHEN t.stage_id = s.stage_id
                    THEN struct_pack(stage_id := t.stage_id, name := t.name,
                                     probability := s.probability)
                    ELSE t END)
        END,
        s.name NOT IN ('Pipeline.StageRenamed', 'Pipeline.StageReweighted')
            OR list_contains(list_transform(l.stages, lambda t: t.stage_id), s.stage_id)
    FROM lists l
    JOIN steps s ON s.pipeline_id = l.pipeline_id AND s.step = l.step + 1
),
written AS (
    SELECT pipeline_id, position,
           unnest(list_transform(stages, lambda t, i: struct_insert(t, place := i - 1))) AS t
    FROM lists
    WHERE wrote
)
SELECT CAST(t.stage_id AS UUID), CAST(pipeline_id AS UUID), t.name, t.probability, t.place
FROM written
QUALIFY row_number() OVER (PARTITION BY t.stage_id ORDER BY position DESC, t.place DESC) = 1
"""

ACCOUNTS = """
INSERT INTO board_accounts
SELECT CAST(aggregate_id AS UUID), arg_max(state ->> '$.name', position)
FROM events
WHERE name IN ('Account.Registered', 'Account.DetailsChanged')
GROUP BY aggregate_id
"""

# An interaction is kept from its ``*Logged`` event unless it was ever retracted (a
# retracted one is forgotten, and corrections after that are ignored). Its deal and time
# are those of the last event that sets them: the logging, or a correction whose
# ``changes`` hold the field (``"deal_id": null`` unlinks it: hence json_exists and
# arg_max_null, which keeps a NULL deal). Most interactions are only logged and are
# taken as logged; the few corrected or retracted ones are folded event by event.
INTERACTIONS = f"""
INSERT INTO board_interactions
WITH touched AS (
    SELECT DISTINCT aggregate_id
    FROM events
    WHERE name IN ('Interaction.Corrected', 'Interaction.Retracted')
),
untouched AS (
    SELECT aggregate_id,
           json_extract_string(state, ['$.deal_id._data_', '$.occurred_at._data_']) AS f
    FROM events
    ANTI JOIN touched USING (aggregate_id)
    WHERE name IN ({_LOGGED})
),
steps AS (
    SELECT aggregate_id, position, name,
           json_extract_string(state, ['$.deal_id._data_', '$.occurred_at._data_']) AS f,
           true AS sets_deal
    FROM events
    SEMI JOIN touched USING (aggregate_id)
    WHERE name IN ({_LOGGED})
    UNION ALL
    SELECT aggregate_id, position, name,
           json_extract_string(
               state, ['$.changes.deal_id._data_', '$.changes.occurred_at._data_']),
           json_exists(state, '$.changes.deal_id')
    FROM events
    WHERE name = 'Interaction.Corrected'
    UNION ALL
    SELECT aggregate_id, position, name, [NULL, NULL], false
    FROM events
    WHERE name = 'Interaction.Retracted'
),
folded AS (
    SELECT aggregate_id,
           [arg_max_null(f[1], position) FILTER (WHERE sets_deal), arg_max(f[2], position)]
               AS f
    FROM steps
    GROUP BY aggregate_id
    HAVING bool_or(name IN ({_LOGGED})) AND NOT bool_or(name = 'Interaction.Retracted')
)
SELECT CAST(aggregate_id AS UUID), CAST(f[1] AS UUID), CAST(f[2] AS TIMESTAMPTZ)
FROM (FROM untouched UNION ALL FROM folded)
"""

# Every deal seen opened, open or closed, with its final fields (already cast to the
# columns' types), its account's name and its last interaction. Each field is that of
# the last event that sets it; ``Opened`` sets them all, so it is never older than the
# opening. (A deal's events before its opening, which the handlers ignore, cannot
# exist: the opening is the aggregate's first event.)
DEALS = f"""
CREATE TEMP TABLE board_bulk_deals AS
WITH deal_events AS (
    SELECT
        aggregate_id,
        position,
        recorded_at,
        name = 'Deal.Opened' AS opens,
        name IN ('Deal.Opened', 'Deal.StageChanged', 'Deal.Reopened') AS enters,
        name IN ('Deal.Opened', 'Deal.Retitled') AS retitles,
        name IN ('Deal.Opened', 'Deal.AmountChanged') AS revalues,
        name IN ('Deal.Opened', 'Deal.OwnerChanged') AS reassigns,
        name IN ('Deal.Opened', 'Deal.CloseDateChanged') AS redates,
        name IN ('Deal.Opened', 'Deal.ContactsChanged') AS relinks,
        CASE name
            WHEN 'Deal.Opened' THEN 'open'
            WHEN 'Deal.Reopened' THEN 'open'
            WHEN 'Deal.Won' THEN 'won'
            WHEN 'Deal.Lost' THEN 'lost'
        END AS status,
        -- one parse of the event for all the fields it may hold
        json_extract_string(state, [
            '$.pipeline_id._data_', '$.stage_id._data_', '$.title', '$.amount._data_',
            '$.currency', '$.owner_id._data_', '$.account_id._data_',
            '$.expected_close_date._data_', '$.contact_ids']) AS f
    FROM events
    WHERE name IN ({_DEAL_EVENTS})
),
deals AS (
    SELECT
        aggregate_id AS deal_id,
        arg_max(f[1], position) FILTER (WHERE opens) AS pipeline_id,
        arg_max_null(f[7], position) FILTER (WHERE opens) AS account_id,
        arg_max({{'stage_id': f[2], 'at': recorded_at, 'position': position}}, position)
            FILTER (WHERE enters) AS entered,
        arg_max(f[3], position) FILTER (WHERE retitles) AS title,
        arg_max(f[4:5], position) FILTER (WHERE revalues) AS money,
        arg_max(f[6], position) FILTER (WHERE reassigns) AS owner_id,
        arg_max_null(f[8], position) FILTER (WHERE redates) AS expected_close_date,
        arg_max(f[9], position) FILTER (WHERE relinks) AS contact_ids,
        arg_max(status, position) AS status
    FROM deal_events
    GROUP BY aggregate_id
    HAVING bool_or(opens)
),
last_interactions AS (
    SELECT deal_id, max(occurred_at) AS last_interaction_at
    FROM board_interactions
    WHERE deal_id IS NOT NULL
    GROUP BY deal_id
)
SELECT
    CAST(d.deal_id AS UUID) AS deal_id,
    CAST(d.pipeline_id AS UUID) AS pipeline_id,
    CAST(d.entered.stage_id AS UUID) AS stage_id,
    d.title,
    CAST(d.money[1] AS DECIMAL(20,4)) AS amount,
    d.money[2] AS currency,
    CAST(d.owner_id AS UUID) AS owner_id,
    CAST(d.account_id AS UUID) AS account_id,
    a.name AS account_name,
    CAST(json_array_length(d.contact_ids) AS INTEGER) AS contacts,
    CAST(d.expected_close_date AS DATE) AS expected_close_date,
    CAST(d.entered.at AS TIMESTAMPTZ) AS entered_at,
    d.entered.position AS entered_position,
    i.last_interaction_at,
    d.status
FROM deals d
LEFT JOIN board_accounts a ON a.account_id = CAST(d.account_id AS UUID)
LEFT JOIN last_interactions i ON i.deal_id = CAST(d.deal_id AS UUID)
"""

OPEN_DEALS = """
INSERT INTO board_deals
SELECT * EXCLUDE (status) FROM board_bulk_deals WHERE status = 'open'
"""

CLOSED_DEALS = """
INSERT INTO board_closed_deals
SELECT * FROM board_bulk_deals WHERE status <> 'open'
"""

# A stage belongs to one pipeline, so every deal of a key has the same pipeline.
TOTALS = """
INSERT INTO board_totals
SELECT min(pipeline_id), stage_id, owner_id, currency, count(*), sum(amount)
FROM board_deals
GROUP BY stage_id, owner_id, currency
"""


def build(con: duckdb.DuckDBPyConnection) -> None:
    """Fill the board's empty tables from ``events``, inside the caller's transaction
    (a failure rolls it back, the temporary table of the deals with it)."""
    for statement in (
        PIPELINES,
        STAGES,
        ACCOUNTS,
        INTERACTIONS,
        DEALS,
        OPEN_DEALS,
        CLOSED_DEALS,
        TOTALS,
        "DROP TABLE board_bulk_deals",
    ):
        con.execute(statement)
