"""The audit log (:class:`projections.audit.AuditLog`) built in bulk: set-based SQL over
the relation ``events`` (see :mod:`projections.bulk`) that fills ``audit_log`` and
``audit_state`` exactly as the handler ``AuditLog.on_any`` would.

The handler keeps, per record, the last value of every field it has logged (the
record's "state"), and logs for each event the fields whose value differs from the
one before. The "before" of a field is, in ``changes()``'s order of preference:

1. the event's ``previous``, when the event changes exactly one field (it is then the
   before of every field the event logs, implied ones included);
2. the event's ``previous_<field>``;
3. the record's state: the last value logged for the field (JSON null when none).

A field is logged when its before differs from its after, and a logged field's after
becomes its state. So a field whose before is the record's state is always "written"
(logged or not, the state ends up equal to its after), and one whose before is the
event's own is written only when logged: the state of a field before an event is the
last write before it, a window (``last_value … IGNORE NULLS``) over the record's rows
of that field in position order. The one sequential part is the set-valued fields
(``roles``, ``token_ids``, ``tags``): an event that adds or removes a member logs the
list before and after it, so a recursive CTE walks the writes of those fields.

Most of the work is the first event of each record (an interaction is logged once and
rarely corrected): the state before it is empty, so its changes, and the state after
it, come straight from its fields, list by list. Only the later events, and the fields
of first events that later events touch, become one row per field for the window.

Values are compared and written as JSON text. ``json_extract`` writes values as
``orjson`` does (compact, UTF-8 unescaped) except for the hex digits of ``\\u00XX``
escapes, upper case in DuckDB and lower case in orjson: ``audit_orjson`` lowers them
last. The transcoding wrappers are removed from that text (``audit_plain``) as
``projections.events._plain`` removes them from decoded values; a wrapper never holds
null (the transcoder is not called for None), so a value is null before and after.
Field names are written between quotes as they are: they are the events' attribute
names, which JSON need not escape.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import orjson

from projections.audit import IMPLIED, INTERNAL, REDACTED, SET_CHANGES


def _strings(values: Iterable[str]) -> str:
    """A SQL list of string literals (names from the projector's own constants)."""
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values))


#: Keys of the stored JSON that are not the event's data (``projections.events.decode``).
_NOT_DATA = ("timestamp", "originator_topic", "class_version", "_meta")
#: Keys never logged as fields: not data, redacted, or the event's own before (as are
#: the keys that start with ``previous_``).
_SKIPPED = _strings([*_NOT_DATA, *REDACTED, "previous"])
#: The events handled apart: set changes and corrections.
_SPECIAL = _strings([*SET_CHANGES, "Interaction.Corrected"])


def _audited(name: str) -> str:
    """Whether the event named in column ``name`` is audited: its kind (the name before
    the first dot, or the whole name) is not internal."""
    internal = " OR ".join(
        f"starts_with({name}, '{kind}.') OR {name} = '{kind}'" for kind in sorted(INTERNAL)
    )
    return f"NOT ({internal})"


def _implied(part: int, name: str) -> str:
    """The fields an event changes without carrying them (``IMPLIED``), by the event
    name in column ``name``: part 0 the field names, part 1 their values as JSON text."""
    branches = " ".join(
        f"WHEN '{event}' THEN ["
        + ", ".join(
            "'" + (field if part == 0 else orjson.dumps(value).decode()).replace("'", "''") + "'"
            for field, value in fields.items()
        )
        + "]"
        for event, fields in sorted(IMPLIED.items())
    )
    return f"CASE {name} {branches} ELSE CAST([] AS VARCHAR[]) END"


_SET_CHANGES = ", ".join(
    f"('{name}', '{source}', '{target}', {'true' if add else 'false'})"
    for name, (source, target, add) in sorted(SET_CHANGES.items())
)

#: The transcoding wrappers as stored (no spaces): a UUID, and generic wrappers of a
#: scalar, of a flat object (a ``Stage`` once its id is plain) and of a flat list.
#: ``{"`` never occurs inside a JSON string (its quote would be escaped), so these
#: only match real wrappers.
_STRING = r'"(?:[^"\\]|\\.)*"'
_UUID_WRAPPER = (
    r'\{"_type_":"uuid_hex","_data_":"([0-9a-f]{8})([0-9a-f]{4})([0-9a-f]{4})'
    r'([0-9a-f]{4})([0-9a-f]{12})"\}'
)
_SCALAR_WRAPPER = r'\{"_type_":"[^"]*","_data_":(' + _STRING + r'|[^"{}\[\],]+)\}'
_FLAT_WRAPPER = (
    r'\{"_type_":"[^"]*","_data_":(\{(?:' + _STRING + r'|[^"{}\[\]])*\}'
    r"|\[(?:" + _STRING + r'|[^"{}\[\]])*\])\}'
)
#: The control characters ``json_extract`` escapes with upper-case hex digits.
_UPPER_ESCAPES = ("0B", "0E", "0F", "1A", "1B", "1C", "1D", "1E", "1F")

MACROS = (
    # A value's JSON text without its transcoding wrappers, as ``_plain`` makes it: a
    # UUID canonical, any other wrapper replaced by its data. The common shapes are cut
    # out; the rest (stages, corrections) go through the regular expressions,
    # innermost first.
    "CREATE OR REPLACE TEMP MACRO audit_plain(v) AS CASE "
    """WHEN NOT contains(v, '{"_type_":"') THEN v """
    # One UUID: 65 characters, the 32 hex digits from the 32nd.
    """WHEN starts_with(v, '{"_type_":"uuid_hex","_data_":"') AND length(v) = 65 """
    """THEN '"' || CAST(CAST(substr(v, 32, 32) AS UUID) AS VARCHAR) || '"' """
    # One wrapper of a scalar: its data, between ``","_data_":`` and the last brace.
    """WHEN starts_with(v, '{"_type_":"') AND NOT contains(v, '","_data_":{') """
    """AND NOT contains(v, '","_data_":[') """
    """THEN left(split_part(v, '","_data_":', 2), -1) """
    # A list of n UUIDs (contact ids): n wrappers of 65 characters and nothing else.
    """WHEN starts_with(v, '[{"_type_":"uuid_hex","_data_":"') AND length(v) = 66 * ("""
    """(length(v) - length(replace(v, '{"_type_":"uuid_hex","_data_":"', ''))) // 31) + 1 """
    """THEN '["' || array_to_string(list_transform(string_split(substr(v, 33, length(v) - 35), """
    """'"},{"_type_":"uuid_hex","_data_":"'), lambda h: CAST(CAST(h AS UUID) AS VARCHAR)), """
    """'","') || '"]' """
    f"ELSE regexp_replace(regexp_replace(regexp_replace(v, '{_UUID_WRAPPER}', "
    f"""'"\\1-\\2-\\3-\\4-\\5"', 'g'), '{_SCALAR_WRAPPER}', '\\1', 'g'), """
    f"'{_FLAT_WRAPPER}', '\\1', 'g') END",
    # JSON text as ``orjson`` writes it (see above). Escaped backslashes are set aside
    # first, so that a backslash followed by the text ``u001F`` is left alone; chr(1)
    # never occurs raw in JSON text.
    "CREATE OR REPLACE TEMP MACRO audit_orjson(t) AS CASE "
    "WHEN NOT contains(t, '\\u00') THEN t ELSE replace("
    + "replace(" * len(_UPPER_ESCAPES)
    + "replace(t, '\\\\', chr(1))"
    + "".join(f", '\\u00{code}', '\\u00{code.lower()}')" for code in _UPPER_ESCAPES)
    + ", chr(1), '\\\\') END",
    # The members a set change starts from: ``list(state.get(field) or [])``.
    "CREATE OR REPLACE TEMP MACRO audit_members(v) AS CASE "
    """WHEN v IS NULL OR v IN ('null', '[]', '""', '0', '0.0', 'false', '{}') """
    "THEN CAST([] AS VARCHAR[]) ELSE CAST(json_extract(v, '$[*]') AS VARCHAR[]) END",
    "CREATE OR REPLACE TEMP MACRO audit_list(members) AS "
    "'[' || array_to_string(members, ',') || ']'",
    # ``"previous" in data and len(_changed_fields(event.data)) == 1``
    "CREATE OR REPLACE TEMP MACRO audit_one_previous(ks) AS "
    f"""list_contains(ks, 'previous') AND len(list_filter(ks,
        lambda k: k NOT IN ({_strings([*_NOT_DATA, "previous"])})
                  AND NOT starts_with(k, 'previous_'))) = 1""",
    # An event's data as items {f: field, a: after, p: the event's own before or NULL}
    # from its keys, their values (plain) and its implied fields and values.
    "CREATE OR REPLACE TEMP MACRO audit_items(ks, plains, iks, ivs) AS "
    f"""list_transform(
        list_filter(range(1, len(ks) + 1),
            lambda i: ks[i] NOT IN ({_SKIPPED}) AND NOT starts_with(ks[i], 'previous_')),
        lambda i: {{
            'f': ks[i],
            'a': CASE WHEN list_contains(iks, ks[i]) THEN ivs[list_position(iks, ks[i])]
                      ELSE plains[i] END,
            'p': CASE WHEN audit_one_previous(ks) THEN plains[list_position(ks, 'previous')]
                      ELSE plains[list_position(ks, 'previous_' || ks[i])] END}})
    || list_transform(
        list_filter(iks, lambda k: NOT list_contains(ks, k)),
        lambda k: {{
            'f': k,
            'a': ivs[list_position(iks, k)],
            'p': CASE WHEN audit_one_previous(ks) THEN plains[list_position(ks, 'previous')]
                      ELSE plains[list_position(ks, 'previous_' || k)] END}})""",
    # The changes of a simple first event, and the state after it, from its pairs
    # '"field":' chr(2) after: chr(2) replaced by the before (null), or removed.
    "CREATE OR REPLACE TEMP MACRO audit_pairs_changes(pairs) AS "
    """'{' || replace(array_to_string(pairs, '},'), chr(2), '{"before":null,"after":') """
    "|| CASE WHEN len(pairs) > 0 THEN '}' ELSE '' END || '}'",
    "CREATE OR REPLACE TEMP MACRO audit_pairs_state(pairs) AS "
    "'{' || replace(array_to_string(pairs, ','), chr(2), '') || '}'",
    # The same for any first event, from its items {f: field, a: after, p: the event's
    # own before or NULL}: the state before it is empty.
    "CREATE OR REPLACE TEMP MACRO audit_first_changes(items) AS "
    "'{' || array_to_string(list_transform("
    "list_filter(items, lambda x: coalesce(x.p, 'null') <> x.a), "
    """lambda x: '"' || x.f || '":{"before":' || coalesce(x.p, 'null') """
    """|| ',"after":' || x.a || '}'), ',') || '}'""",
    "CREATE OR REPLACE TEMP MACRO audit_first_state(items) AS "
    "'{' || array_to_string(list_transform("
    "list_filter(items, lambda x: coalesce(x.p, 'null') <> x.a), "
    """lambda x: '"' || x.f || '":' || x.a), ',') || '}'""",
)

#: The records with more than one audited event, or with a set change or a correction
#: (never a record's first event, but then the generic path would not know them), and
#: the position of their first event.
RECORDS = f"""
CREATE TEMP TABLE audit_records AS
SELECT aggregate_id, min(position) AS first_position
FROM events
WHERE {_audited("name")}
GROUP BY aggregate_id
HAVING count(*) > 1 OR bool_or(name IN ({_SPECIAL}))
"""

#: Every audited event but the set changes and corrections (read apart in
#: :data:`FIELDS`), parsed once: ``ks`` its keys, ``vs`` their values, ``iks``/``ivs``
#: the fields it implies (``IMPLIED``). Its data, in the order of ``data`` in
#: ``changes()``, is its fields (an implied value overrides a carried one in place),
#: then the implied fields it does not carry; as ``items`` {f: field, a: after, p: the
#: before the event gives itself, or NULL when it is the record's state}. A "simple"
#: event gives no before of its own and carries none of its implied fields: its data
#: is just (field, after) pairs, ``fields``.
#:
#: The state before a record's first event is empty: a simple first event ("fast")
#: logs the fields it gives a value other than null, kept as ``pairs`` '"field":'
#: chr(2) after (chr(2) never occurs raw in JSON text) for its changes and the state
#: after it; another first event of a record with one event gets its ``changes`` and
#: ``state`` from its items. A fast event of a record with more events also keeps what
#: it logged as ``logged`` (field, after); the other events of such records keep their
#: ``fields`` or ``items`` for :data:`FIELDS`.
EVENTS = f"""
CREATE TEMP TABLE audit_events AS
SELECT position, aggregate_id, version, name, recorded_at, actor, request_id, source,
    multi, fast,
    pairs,
    CASE WHEN NOT multi AND NOT simple THEN audit_first_changes(items) END AS changes,
    CASE WHEN NOT multi AND NOT simple THEN audit_first_state(items) END AS state,
    CASE WHEN multi AND fast THEN list_transform(pairs,
        lambda x: (split_part(x, '"', 2), split_part(x, chr(2), 2))) END AS logged,
    fields,
    CASE WHEN multi THEN items END AS items
FROM (
    SELECT *,
        CASE WHEN fast THEN list_transform(
            list_filter(list_zip(ks, vs) || list_zip(iks, ivs),
                lambda x: x[2] <> 'null' AND x[1] NOT IN ({_SKIPPED})
                          AND NOT starts_with(x[1], 'previous_')),
            lambda x: '"' || x[1] || '":' || chr(2) || audit_plain(x[2]))
        END AS pairs,
        CASE WHEN multi AND NOT fast AND simple THEN list_filter(
            list_zip(ks, list_transform(vs, lambda v: audit_plain(v))) || list_zip(iks, ivs),
            lambda x: x[1] NOT IN ({_SKIPPED}) AND NOT starts_with(x[1], 'previous_'))
        END AS fields,
        CASE WHEN NOT simple THEN audit_items(ks, plains, iks, ivs) END AS items
    FROM (
        SELECT *, simple AND first AS fast,
            CASE WHEN NOT simple THEN list_transform(vs, lambda v: audit_plain(v))
            END AS plains
        FROM (
            SELECT *,
                len(list_filter(ks, lambda k: starts_with(k, 'previous'))) = 0
                    AND NOT list_has_any(ks, iks) AS simple
            FROM (
                SELECT e.position, e.aggregate_id, e.version, e.name, e.recorded_at,
                    e.actor, e.request_id, e.source, r.aggregate_id IS NOT NULL AS multi,
                    r.aggregate_id IS NULL OR e.position = r.first_position AS first,
                    json_keys(e.state) AS ks,
                    CAST(json_extract(e.state, '$.*') AS VARCHAR[]) AS vs,
                    {_implied(0, "e.name")} AS iks,
                    {_implied(1, "e.name")} AS ivs
                FROM events e
                LEFT JOIN audit_records r ON r.aggregate_id = e.aggregate_id
                WHERE {_audited("e.name")} AND e.name NOT IN ({_SPECIAL})
            )
        )
    )
)
UNION ALL
SELECT position, aggregate_id, version, name, recorded_at, actor, request_id, source,
    true, false, NULL, NULL, NULL, NULL, NULL, NULL
FROM events
WHERE name IN ({_SPECIAL})
"""

#: One row per field of the events that need the record's state, ``op`` saying where
#: the field's before comes from: 'state' (the record's), 'prev' (``p``, the event's),
#: 'add'/'remove' (a set change of the member ``elem``). A correction's fields are its
#: ``changes``, each with its ``previous`` value when it has one. Then the fields the
#: first events logged (``fast``), for those a later event of the record touches: the
#: window needs them as the first write.
FIELDS = f"""
CREATE TEMP TABLE audit_fields AS
WITH later AS MATERIALIZED (
    SELECT position, aggregate_id, ord, item[1] AS f, item[2] AS a, NULL AS p, 'state' AS op,
        NULL AS elem
    FROM (
        SELECT position, aggregate_id, unnest(fields) AS item,
            generate_subscripts(fields, 1) AS ord
        FROM audit_events
        WHERE fields IS NOT NULL
    )
    UNION ALL
    SELECT position, aggregate_id, ord, item.f, item.a, item.p,
        CASE WHEN item.p IS NULL THEN 'state' ELSE 'prev' END, NULL
    FROM (
        SELECT position, aggregate_id, unnest(items) AS item,
            generate_subscripts(items, 1) AS ord
        FROM audit_events
        WHERE items IS NOT NULL
    )
    UNION ALL
    SELECT position, aggregate_id, i, ck[i], audit_plain(cv[i]),
        audit_plain(json_extract(previous, '$."' || ck[i] || '"')) AS p,
        CASE WHEN p IS NULL THEN 'state' ELSE 'prev' END, NULL
    FROM (
        SELECT position, aggregate_id, json_keys(state, '$.changes') AS ck,
            CAST(json_extract(state, '$.changes.*') AS VARCHAR[]) AS cv,
            json_extract(state, '$.previous') AS previous
        FROM events
        WHERE name = 'Interaction.Corrected'
    ), range(1, len(ck) + 1) AS t(i)
    WHERE ck[i] NOT IN ({_SKIPPED}) AND NOT starts_with(ck[i], 'previous_')
    UNION ALL
    SELECT e.position, e.aggregate_id, 1, s.target, NULL, NULL,
        CASE WHEN s.add THEN 'add' ELSE 'remove' END,
        audit_plain(json_extract(e.state, '$."' || s.source || '"'))
    FROM events e
    JOIN (VALUES {_SET_CHANGES}) AS s(name, source, target, add) ON s.name = e.name
)
SELECT *, false AS fast FROM later
UNION ALL
SELECT position, aggregate_id, ord, item[1], item[2], NULL, 'state', NULL, true
FROM (
    SELECT position, aggregate_id, unnest(logged) AS item, generate_subscripts(logged, 1) AS ord
    FROM audit_events
    WHERE logged IS NOT NULL
)
WHERE (aggregate_id, item[1]) IN (SELECT (aggregate_id, f) FROM later)
"""

#: The set changes, with the list before and after each: a recursive walk over the
#: writes of each set-valued field of a record (the field set whole by an event, the
#: members added and removed), one write per step.
SETS = """
CREATE TEMP TABLE audit_sets AS
WITH RECURSIVE writes AS MATERIALIZED (
    SELECT *, row_number() OVER (PARTITION BY aggregate_id, f ORDER BY position) AS k
    FROM audit_fields
    WHERE (aggregate_id, f) IN (
            SELECT (aggregate_id, f) FROM audit_fields WHERE op IN ('add', 'remove'))
      AND (op <> 'prev' OR p <> a)
),
walk AS (
    SELECT aggregate_id, f, k, position, op, '[]' AS before,
        CASE op WHEN 'add' THEN '[' || elem || ']' WHEN 'remove' THEN '[]' ELSE a END AS val
    FROM writes
    WHERE k = 1
    UNION ALL
    SELECT w.aggregate_id, w.f, w.k, w.position, w.op,
        audit_list(audit_members(walk.val)),
        CASE w.op
            WHEN 'add' THEN audit_list(list_append(audit_members(walk.val), w.elem))
            WHEN 'remove' THEN audit_list(
                list_filter(audit_members(walk.val), lambda m: m <> w.elem))
            ELSE w.a END
    FROM walk
    JOIN writes w ON w.aggregate_id = walk.aggregate_id AND w.f = walk.f AND w.k = walk.k + 1
)
SELECT position, f, before, val AS after FROM walk WHERE op IN ('add', 'remove')
"""

#: Every field row with its before, its after, and whether it is logged. The state of
#: a field before an event is the last write before it: a logged 'prev' field, a set
#: change, or any 'state' field (logged, or equal to the state already).
CHANGES = """
CREATE TEMP TABLE audit_changes AS
SELECT position, aggregate_id, ord, f, after, fast,
    CASE op
        WHEN 'prev' THEN p
        WHEN 'state' THEN coalesce(last_value(
            CASE WHEN op = 'prev' AND p = after THEN NULL ELSE after END IGNORE NULLS)
            OVER (PARTITION BY aggregate_id, f ORDER BY position
                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 'null')
        ELSE set_before END AS before,
    op IN ('add', 'remove') OR before <> after AS logged
FROM (
    SELECT r.*, coalesce(r.a, s.after) AS after, s.before AS set_before
    FROM audit_fields r
    LEFT JOIN audit_sets s ON s.position = r.position AND s.f = r.f
)
"""

#: One row per audited event: the changes of a first event as :data:`EVENTS` made
#: them, those of the others from their logged fields in the order of their data.
#: (``list_sort`` of unordered lists: an ordered ``string_agg`` costs far more.)
LOG = """
INSERT INTO audit_log
SELECT e.position, CAST(e.recorded_at AS TIMESTAMPTZ), e.actor, e.name,
    lower(split_part(e.name, '.', 1)), CAST(e.aggregate_id AS UUID), e.version,
    CAST(audit_orjson(coalesce(audit_pairs_changes(e.pairs), e.changes, c.changes, '{}'))
        AS JSON),
    e.request_id, e.source
FROM audit_events e
LEFT JOIN (
    SELECT position, '{' || array_to_string(list_transform(list_sort(list({
        'ord': ord,
        'text': '"' || f || '":{"before":' || before || ',"after":' || after || '}'})),
        lambda x: x.text), ',') || '}' AS changes
    FROM audit_changes
    WHERE logged AND NOT fast
    GROUP BY position
) c ON c.position = e.position
"""

#: The state of every record: its logged fields, in the order they were first logged,
#: each with the value logged last. For a record with several events: the fields its
#: first event logged, in their order, with the last value of those logged again, then
#: the fields first logged later.
STATE = """
INSERT INTO audit_state
SELECT CAST(aggregate_id AS UUID),
    CAST(audit_orjson(coalesce(audit_pairs_state(pairs), state)) AS JSON)
FROM audit_events
WHERE NOT multi
UNION ALL
SELECT CAST(aggregate_id AS UUID), CAST(audit_orjson('{' || array_to_string(
    list_transform(opening, lambda x: '"' || x[1] || '":'
        || coalesce(tracked[list_position(tracked_fields, x[1])].value, x[2]))
    || list_transform(
        list_sort(list_filter(tracked, lambda t: NOT list_contains(opening_fields, t.f))),
        lambda t: '"' || t.f || '":' || t.value), ',') || '}') AS JSON)
FROM (
    SELECT r.aggregate_id, coalesce(o.logged, []) AS opening,
        list_transform(coalesce(o.logged, []), lambda x: x[1]) AS opening_fields,
        coalesce(t.fields, []) AS tracked,
        list_transform(coalesce(t.fields, []), lambda x: x.f) AS tracked_fields
    FROM audit_records r
    LEFT JOIN audit_events o ON o.logged IS NOT NULL AND o.aggregate_id = r.aggregate_id
    LEFT JOIN (
        -- The fields the window saw logged: where first, and their last value.
        SELECT aggregate_id,
            list({'position': first_position, 'ord': first_ord, 'f': f, 'value': value})
                AS fields
        FROM (
            SELECT aggregate_id, f, min(position) AS first_position,
                arg_min(ord, position) AS first_ord, arg_max(after, position) AS value
            FROM audit_changes
            WHERE logged
            GROUP BY aggregate_id, f
        )
        GROUP BY aggregate_id
    ) t ON t.aggregate_id = r.aggregate_id
)
"""

STATEMENTS = (RECORDS, EVENTS, FIELDS, SETS, CHANGES, LOG, STATE)
_TEMPORARY = ("audit_records", "audit_events", "audit_fields", "audit_sets", "audit_changes")


def build(con: duckdb.DuckDBPyConnection) -> None:
    """Fill ``audit_log`` and ``audit_state`` (empty) from ``events``; no commit."""
    for statement in MACROS:
        con.execute(statement)
    try:
        for statement in STATEMENTS:
            con.execute(statement)
    finally:
        for table in _TEMPORARY:
            con.execute(f"DROP TABLE IF EXISTS temp.{table}")
