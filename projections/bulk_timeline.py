"""The timeline read model built in bulk: set-based SQL over the relation ``events``
(see :mod:`projections.bulk`) that gives the same ``timeline``, ``timeline_records``
and ``timeline_sources`` as the handlers of :class:`projections.timeline.Timeline`.

How the handlers' memory becomes SQL:

- A summary shows the names known at its event ("Moved from Lead to Proposal"): an
  ``ASOF JOIN`` finds the last name-setting event before it — a record registered,
  created, opened, its details changed or retitled; a pipeline stage created, added or
  renamed; a task created or retitled.
- A record's details change is compared with the fields its previous record event
  set: ``lag`` over the record's events.
- An interaction's rows are a function of its last state: its logged fields, each
  overwritten by the last correction that changed it. A correction's records are the
  links before and after it, a retraction's those before it: ``last_value … IGNORE
  NULLS`` over the interaction's events (only for the few corrected or retracted).

JSON is compared as text, so every JSON value is written here as ``orjson`` writes it:
compact, keys in the handlers' order, non-ASCII as is. Values are cut from the stored
JSON by DuckDB (``json_extract`` with several paths parses a state once) and written
back as DuckDB serializes them, which differs from Python's ``json`` and ``orjson``
only in upper-case hex digits of a few control characters' escapes (``\\u001F``):
``timeline_fix`` lowers them in every JSON text this module writes.

The handlers' payloads are ``{**event.data, **extra}``, in the stored order of the
event's fields: :data:`DATA` lists them per event, with how each is stored
(``tests/projections/test_bulk_timeline.py`` checks it against the domain events).

Where the time goes (200k events, 110k of them interactions): about half is writing
the rows (a ``JSON`` payload on each of ~340k timeline rows, and each interaction's
state in ``timeline_sources``), which the handlers pay too; then parsing each
interaction's stored JSON once, and building the JSON texts.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb

from domain.interaction import DETAIL_FIELDS as DETAILS_OF
from domain.interaction import InteractionKind
from projections.events import REMOVED_SQL

#: What Python's ``str.isspace`` holds (what ``str.strip`` removes), as code points.
WHITESPACE = (
    0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x85, 0xA0, 0x1680,
    *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000,
)  # fmt: skip
#: Where Python's ``str.splitlines`` ends a line, as code points.
LINE_BREAKS = (0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029)
#: text.MAX_EXCERPT
MAX_EXCERPT = 100

#: How an event's field is stored: plain JSON (strings, numbers, lists of strings), a
#: UUID, a list of UUIDs, or another transcoded scalar (datetime, date, decimal, enum).
JSON, UUID, UUIDS, WRAPPED = "json", "uuid", "uuids", "wrapped"

#: The fields of each handled event's data (``Recorded.data``), in their stored order.
DATA: dict[str, tuple[tuple[str, str], ...]] = {
    "Account.Registered": (
        ("name", JSON),
        ("website", JSON),
        ("industry", JSON),
        ("country", JSON),
        ("address", JSON),
        ("owner_id", UUID),
        ("parent_id", UUID),
    ),
    "Account.OwnerChanged": (("owner_id", UUID), ("previous", UUID)),
    "Account.ParentChanged": (("parent_id", UUID), ("previous", UUID)),
    "Account.Archived": (),
    "Account.Restored": (),
    "Contact.Created": (
        ("first_name", JSON),
        ("last_name", JSON),
        ("emails", JSON),
        ("phones", JSON),
        ("job_title", JSON),
        ("account_id", UUID),
        ("owner_id", UUID),
        ("tags", JSON),
        ("lifecycle_stage", WRAPPED),
    ),
    "Contact.EmailsChanged": (("emails", JSON), ("previous", JSON)),
    "Contact.AccountChanged": (("account_id", UUID), ("previous", UUID)),
    "Contact.OwnerChanged": (("owner_id", UUID), ("previous", UUID)),
    "Contact.Tagged": (("tag", JSON),),
    "Contact.Untagged": (("tag", JSON),),
    "Contact.LifecycleStageChanged": (("stage", WRAPPED), ("previous", WRAPPED)),
    "Deal.Opened": (
        ("title", JSON),
        ("account_id", UUID),
        ("contact_ids", UUIDS),
        ("amount", WRAPPED),
        ("currency", JSON),
        ("pipeline_id", UUID),
        ("stage_id", UUID),
        ("owner_id", UUID),
        ("expected_close_date", WRAPPED),
    ),
    "Deal.StageChanged": (("stage_id", UUID), ("previous", UUID)),
    "Deal.Retitled": (("title", JSON), ("previous", JSON)),
    "Deal.AmountChanged": (
        ("amount", WRAPPED),
        ("currency", JSON),
        ("previous_amount", WRAPPED),
        ("previous_currency", JSON),
    ),
    "Deal.OwnerChanged": (("owner_id", UUID), ("previous", UUID)),
    "Deal.CloseDateChanged": (("expected_close_date", WRAPPED), ("previous", WRAPPED)),
    "Deal.ContactsChanged": (("contact_ids", UUIDS), ("previous", UUIDS)),
    "Deal.Won": (("reason", JSON),),
    "Deal.Lost": (("reason", JSON),),
    "Deal.Reopened": (("stage_id", UUID),),
    "Task.Created": (
        ("title", JSON),
        ("due_at", WRAPPED),
        ("assignee_id", UUID),
        ("linked_kind", WRAPPED),
        ("linked_id", UUID),
        ("created_by", UUID),
    ),
    "Task.Completed": (("completed_by", UUID),),
    "Task.Reopened": (("reopened_by", UUID),),
}

#: The summary of each change of a record itself, as SQL over the event's fields
#: (``{field}``: its JSON text) and the names known then (columns of ``OWN``).
SUMMARIES: dict[str, str] = {
    "Account.Registered": "'Account registered: ' || timeline_str({name})",
    "Account.OwnerChanged": "'Owner changed'",
    "Account.ParentChanged": "CASE WHEN account <> '' THEN 'Moved under ' || account "
    "ELSE 'No longer under ' || coalesce(previous_account, 'None') END",
    "Account.Archived": "'Account archived'",
    "Account.Restored": "'Account restored'",
    "Contact.Created": "'Contact created: ' || timeline_contact_name({first_name}, {last_name})",
    "Contact.EmailsChanged": "'E-mail addresses set to ' "
    "|| timeline_listing(CAST(json_extract_string({emails}, '$[*]') AS VARCHAR[]))",
    "Contact.AccountChanged": "CASE WHEN account <> '' THEN 'Linked to account ' || account "
    "ELSE 'Unlinked from ' || coalesce(previous_account, 'None') END",
    "Contact.OwnerChanged": "'Owner changed'",
    "Contact.Tagged": "'Tagged ' || timeline_str({tag})",
    "Contact.Untagged": "'Untagged ' || timeline_str({tag})",
    "Contact.LifecycleStageChanged": "timeline_from_to('Lifecycle stage', "
    "timeline_str({previous}), timeline_str({stage}))",
    "Deal.Opened": "'Deal opened: ' || timeline_str({title}) || ', ' || timeline_str({amount}) "
    "|| ' ' || timeline_str({currency}) || ' in ' || stage",
    "Deal.StageChanged": "'Moved from ' || previous_stage || ' to ' || stage",
    "Deal.Retitled": "'Renamed from ' || timeline_str({previous}) || ' to ' "
    "|| timeline_str({title})",
    "Deal.AmountChanged": "timeline_from_to('Amount', timeline_str({previous_amount}) || ' ' "
    "|| timeline_str({previous_currency}), timeline_str({amount}) || ' ' "
    "|| timeline_str({currency}))",
    "Deal.OwnerChanged": "'Owner changed'",
    "Deal.CloseDateChanged": "timeline_from_to('Expected close date', timeline_str({previous}), "
    "timeline_str({expected_close_date}))",
    "Deal.ContactsChanged": "'Contacts set to ' || timeline_listing(contact_names)",
    "Deal.Won": "'Deal won' || coalesce(': ' || nullif(timeline_excerpt_json({reason}), ''), '')",
    "Deal.Lost": "'Deal lost' || coalesce(': ' || nullif(timeline_excerpt_json({reason}), ''), '')",
    "Deal.Reopened": "'Deal reopened in ' || stage",
}

#: What a change's payload adds to its event's data: names known at the event.
EXTRAS: dict[str, tuple[tuple[str, str], ...]] = {
    "Account.Registered": (("parent_name", "account"),),
    "Account.ParentChanged": (("parent_name", "account"), ("previous_name", "previous_account")),
    "Contact.Created": (("account_name", "account"),),
    "Contact.AccountChanged": (
        ("account_name", "account"),
        ("previous_name", "previous_account"),
    ),
    "Deal.Opened": (("stage_name", "stage"), ("account_name", "account")),
    "Deal.StageChanged": (("stage_name", "stage"), ("previous_name", "previous_stage")),
    "Deal.ContactsChanged": (("contact_names", "contact_names"),),
    "Deal.Reopened": (("stage_name", "stage"),),
}

#: The ids whose names a change shows: the account (``_name(id, "account")``), the
#: previous account, the stage and the previous stage.
REFERENCES: dict[str, dict[str, str]] = {
    "Account.Registered": {"account_ref": "parent_id"},
    "Account.ParentChanged": {"account_ref": "parent_id", "previous_account_ref": "previous"},
    "Contact.Created": {"account_ref": "account_id"},
    "Contact.AccountChanged": {"account_ref": "account_id", "previous_account_ref": "previous"},
    "Deal.Opened": {"account_ref": "account_id", "stage_ref": "stage_id"},
    "Deal.StageChanged": {"stage_ref": "stage_id", "previous_stage_ref": "previous"},
    "Deal.Reopened": {"stage_ref": "stage_id"},
}

#: The fields a record keeps (``DETAILS`` of accounts and contacts; a deal's title).
RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "account": ("name", "website", "industry", "country", "address"),
    "contact": ("first_name", "last_name", "phones", "job_title"),
    "deal": ("title",),
}
RECORD_EVENTS = {
    "Account.Registered": "account",
    "Account.DetailsChanged": "account",
    "Contact.Created": "contact",
    "Contact.DetailsChanged": "contact",
    "Deal.Opened": "deal",
    "Deal.Retitled": "deal",
}
NAME_FIELDS = ("name", "first_name", "last_name")

LOGGED_KINDS = {
    "Interaction.CallLogged": "call",
    "Interaction.EmailLogged": "email",
    "Interaction.MeetingLogged": "meeting",
    "Interaction.NoteLogged": "note",
    "Interaction.SmsLogged": "sms",
}
LABELS = {"call": "Call", "email": "E-mail", "meeting": "Meeting", "note": "Note", "sms": "SMS"}
#: An interaction's fields that link it to records, then its details, sorted.
LINK_FIELDS = ("contact_ids", "account_id", "deal_id")
DETAIL_FIELDS = tuple(sorted(set().union(*DETAILS_OF.values())))
#: Every field a correction may change (``COMMON_FIELDS`` and the details).
CORRECTABLE = ("occurred_at", *LINK_FIELDS, *DETAIL_FIELDS)
#: How a logged interaction's fields are stored (the others are plain JSON).
LOGGED_STORAGE = {
    "occurred_at": WRAPPED,
    "contact_ids": UUIDS,
    "account_id": UUID,
    "deal_id": UUID,
    "logged_by": UUID,
    "direction": WRAPPED,
    "ends_at": WRAPPED,
    "outcome": WRAPPED,
}


def _regex_class(points: tuple[int, ...]) -> str:
    return "[" + "".join(f"\\x{{{p:x}}}" for p in points) + "]"


#: Upper-case hex escapes DuckDB writes where Python's json and orjson write lower case.
_UPPER_ESCAPES = ("000B", "000E", "000F", "001A", "001B", "001C", "001D", "001E", "001F")


def _lower_escapes(text: str) -> str:
    # Every ``\\`` (an escaped backslash) is first set aside, so that a backslash
    # followed by the text u001F is left alone; chr(1) never appears raw in JSON.
    expression = f"replace({text}, '\\\\', chr(1))"
    for digits in _UPPER_ESCAPES:
        expression = f"replace({expression}, '\\u{digits}', '\\u{digits.lower()}')"
    return f"replace({expression}, chr(1), '\\\\')"


_WS = "".join(map(chr, WHITESPACE))
_LINE_BREAK = _regex_class(LINE_BREAKS)

MACROS = (
    # Python's whitespace, for trim(). (Not one of them is a quote.)
    f"CREATE OR REPLACE TEMP MACRO timeline_ws() AS '{_WS}'",
    # JSON text as DuckDB writes it -> as orjson writes it.
    "CREATE OR REPLACE TEMP MACRO timeline_fix(j) AS "
    f"CASE WHEN contains(j, '\\u00') THEN {_lower_escapes('j')} ELSE j END",
    # A VARCHAR (or a list of them) as JSON text; NULL as null. (``timeline_json``:
    # as DuckDB writes it, for a text that is fixed as a whole.)
    "CREATE OR REPLACE TEMP MACRO timeline_json(s) AS "
    "coalesce(CAST(to_json(s) AS VARCHAR), 'null')",
    "CREATE OR REPLACE TEMP MACRO timeline_js(s) AS timeline_fix(timeline_json(s))",
    # The string of a JSON string's text.
    "CREATE OR REPLACE TEMP MACRO timeline_str(t) AS json_extract_string(t, '$')",
    # A UUID's stored data as JSON text ('"<32 hex>"', NULL for null) -> canonical.
    "CREATE OR REPLACE TEMP MACRO timeline_uuid(t) AS "
    "CAST(CAST(substr(t, 2, 32) AS UUID) AS VARCHAR)",
    "CREATE OR REPLACE TEMP MACRO timeline_uuid_json(t) AS "
    "coalesce('\"' || timeline_uuid(t) || '\"', 'null')",
    # A stored list of UUIDs (JSON text) -> canonical, as a list and as JSON text.
    "CREATE OR REPLACE TEMP MACRO timeline_uuids(t) AS "
    "CAST(CAST(json_extract_string(t, '$[*]._data_') AS UUID[]) AS VARCHAR[])",
    "CREATE OR REPLACE TEMP MACRO timeline_uuids_json(t) AS "
    "CAST(to_json(timeline_uuids(t)) AS VARCHAR)",
    # Any stored value (JSON text) -> as Recorded.data has it (for corrections).
    "CREATE OR REPLACE TEMP MACRO timeline_unwrap(v) AS CASE "
    'WHEN starts_with(v, \'{"_type_":"uuid_hex",\') '
    "THEN timeline_uuid_json(CAST(json_extract(v, '$._data_') AS VARCHAR)) "
    "WHEN starts_with(v, '{\"_type_\":') THEN CAST(json_extract(v, '$._data_') AS VARCHAR) "
    'WHEN starts_with(v, \'[{"_type_":"uuid_hex",\') THEN timeline_uuids_json(v) '
    "ELSE v END",
    # An event's data as JSON members: its fields' texts ``x`` (see ``_path``) with
    # their '"name":' ``keys`` and storage ``codes`` (see ``_CODES``).
    "CREATE OR REPLACE TEMP MACRO timeline_members(x, keys, codes) AS "
    "array_to_string(list_transform(x, lambda v, i: keys[i] || CASE substr(codes, i, 1) "
    "WHEN 'u' THEN timeline_uuid_json(v) WHEN 'l' THEN timeline_uuids_json(v) "
    "ELSE coalesce(v, 'null') END), ',')",
    # record_name of a contact.
    "CREATE OR REPLACE TEMP MACRO timeline_contact_name(first, last) AS "
    "trim(timeline_str(first) || ' ' || timeline_str(last), timeline_ws())",
    # text.field_label, text.listing, text.from_to, text.duration, str.capitalize.
    "CREATE OR REPLACE TEMP MACRO timeline_label(f) AS "
    "replace(replace(replace(f, '_ids', 's'), '_id', ''), '_', ' ')",
    "CREATE OR REPLACE TEMP MACRO timeline_listing(names) AS "
    "CASE WHEN len(names) = 0 THEN 'none' ELSE array_to_string(names, ', ') END",
    "CREATE OR REPLACE TEMP MACRO timeline_from_to(what, before, after) AS "
    "what || ' changed from ' || coalesce(before, 'none') || ' to ' || coalesce(after, 'none')",
    "CREATE OR REPLACE TEMP MACRO timeline_duration(s) AS coalesce(nullif(concat_ws(' ', "
    "CASE WHEN s // 3600 <> 0 THEN (s // 3600) || ' h' END, "
    "CASE WHEN s % 3600 // 60 <> 0 THEN (s % 3600 // 60) || ' min' END, "
    "CASE WHEN s % 60 <> 0 THEN (s % 60) || ' s' END), ''), '0 s')",
    "CREATE OR REPLACE TEMP MACRO timeline_capitalize(s) AS "
    "upper(left(s, 1)) || lower(substr(s, 2))",
    # dict.fromkeys(list): each element once, where it first appears.
    "CREATE OR REPLACE TEMP MACRO timeline_distinct(l) AS "
    "list_filter(l, lambda x, i: list_position(l, x) = i)",
    # text.excerpt of a string: its first non-blank line, stripped, cut to 100.
    "CREATE OR REPLACE TEMP MACRO timeline_excerpt(s) AS list_transform([rtrim(regexp_extract("
    f"ltrim(s, timeline_ws()), '^[^{_LINE_BREAK[1:-1]}]*'), timeline_ws())], lambda line: "
    f"CASE WHEN length(line) <= {MAX_EXCERPT} THEN line "
    f"ELSE rtrim(left(line, {MAX_EXCERPT - 1}), timeline_ws()) || '…' END)[1]",
    # The same of a JSON string's text ``t`` (a column), from its first characters
    # when they tell, else from the whole string. Without escapes (every control
    # character is one) and line breaks there: a string of up to 101 characters is
    # its first line; a longer one starting and going on past 100 characters with no
    # whitespace there has a first line longer than 100.
    "CREATE OR REPLACE TEMP MACRO timeline_excerpt_json(t) AS CASE "
    f"WHEN contains(left(t, {MAX_EXCERPT + 3}), '\\') "
    f"OR regexp_matches(substr(t, 2, {MAX_EXCERPT + 1}), '{_LINE_BREAK}') "
    "THEN timeline_excerpt(timeline_str(t)) "
    f"WHEN length(t) <= {MAX_EXCERPT + 3} THEN CASE "
    f"WHEN length(trim(substr(t, 2, length(t) - 2), timeline_ws())) <= {MAX_EXCERPT} "
    "THEN trim(substr(t, 2, length(t) - 2), timeline_ws()) "
    "ELSE rtrim(left(trim(substr(t, 2, length(t) - 2), timeline_ws()), "
    f"{MAX_EXCERPT - 1}), timeline_ws()) || '…' END "
    "WHEN NOT contains(timeline_ws(), substr(t, 2, 1)) "
    f"AND NOT contains(timeline_ws(), substr(t, {MAX_EXCERPT + 2}, 1)) "
    f"THEN rtrim(substr(t, 2, {MAX_EXCERPT - 1}), timeline_ws()) || '…' "
    "ELSE timeline_excerpt(timeline_str(t)) END",
)


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def _path(field: str, storage: str) -> str:
    """The path of a field's JSON text: a UUID's or scalar's ``_data_``."""
    return f"'$.{field}._data_'" if storage in (UUID, WRAPPED) else f"'$.{field}'"


def _as_data(text: str, storage: str) -> str:
    """A field's JSON text (from :func:`_path`) as ``Recorded.data`` has it."""
    if storage == UUID:
        return f"timeline_uuid_json({text})"
    if storage == UUIDS:
        return f"timeline_uuids_json({text})"
    if storage == WRAPPED:
        return f"coalesce({text}, 'null')"
    return text


def _extract(events: dict[str, tuple[tuple[str, str], ...]]) -> str:
    """Each event's fields as a list of JSON texts, the state parsed once."""
    branches = " ".join(
        f"WHEN '{name}' THEN CAST(json_extract(state, [{', '.join(_path(*f) for f in fields)}]) "
        "AS VARCHAR[])"
        for name, fields in events.items()
        if fields
    )
    return f"CASE name {branches} END"


#: One letter per storage, for ``timeline_members``.
_CODES = {JSON: "j", UUID: "u", UUIDS: "l", WRAPPED: "w"}


def _member_key(field: str) -> str:
    """'"field":' as a SQL string."""
    return f"'\"{field}\":'"


def _keys_and_codes(events: dict[str, tuple[tuple[str, str], ...]]) -> str:
    """Columns ``keys`` (each field's '"name":') and ``codes`` (its storage) by event."""
    keys = " ".join(
        f"WHEN '{name}' THEN [{', '.join(_member_key(f) for f, _ in fields)}]"
        for name, fields in events.items()
        if fields
    )
    codes = " ".join(
        f"WHEN '{name}' THEN '{''.join(_CODES[s] for _, s in fields)}'"
        for name, fields in events.items()
        if fields
    )
    return f"CASE name {keys} END AS keys, CASE name {codes} END AS codes"


def _field(name: str, field: str) -> str:
    """The JSON text of an event's field in ``x``."""
    fields = [f for f, _ in DATA[name]]
    return f"x[{fields.index(field) + 1}]"


def _own_events() -> dict[str, tuple[tuple[str, str], ...]]:
    return {name: fields for name, fields in DATA.items() if name in SUMMARIES}


# Every contact, account and deal event that sets a record's fields: the fields as
# JSON texts (``RECORD_FIELDS`` order), the record's name, and the same before it.
RECORDS = """
CREATE TEMP TABLE timeline_bulk_records AS
WITH fielded AS (
    SELECT aggregate_id AS record_id, position, name AS event, recorded_at, actor,
           CASE name {kinds} END AS record_kind,
           CAST(CASE split_part(name, '.', 1) {paths} END AS VARCHAR[]) AS vals
    FROM events
    WHERE name IN ({record_events})
), named AS (
    SELECT *,
           CASE record_kind WHEN 'contact' THEN timeline_contact_name(vals[1], vals[2])
                ELSE timeline_str(vals[1]) END AS record_name
    FROM fielded
)
SELECT *,
       lag(vals) OVER w AS before_vals,
       lag(record_name) OVER w AS before_name
FROM named
WINDOW w AS (PARTITION BY record_id ORDER BY position)
"""

# Pipeline stages: every name a stage was given, at the position it was given.
STAGES = """
CREATE TEMP TABLE timeline_bulk_stages AS
SELECT canonical_uuid(hex) AS stage_id, position, stage_name FROM (
    SELECT position,
           unnest(json_extract_string(state, '$.stages[*]._data_.id._data_')) AS hex,
           unnest(json_extract_string(state, '$.stages[*]._data_.name')) AS stage_name
    FROM events WHERE name = 'Pipeline.Created'
)
UNION ALL
SELECT canonical_uuid(json_extract_string(state, '$.stage._data_.id._data_')), position,
       json_extract_string(state, '$.stage._data_.name')
FROM events WHERE name = 'Pipeline.StageAdded'
UNION ALL
SELECT uuid_at(state, 'stage_id'), position, plain(state, 'name')
FROM events WHERE name = 'Pipeline.StageRenamed'
"""

# Tasks linked to a record (the handlers ignore the others), and every title they had.
TASKS = """
CREATE TEMP TABLE timeline_bulk_tasks AS
SELECT aggregate_id AS task_id, position, plain(state, 'linked_kind') AS record_kind,
       uuid_at(state, 'linked_id') AS record_id
FROM events
WHERE name = 'Task.Created' AND plain(state, 'linked_kind') IS NOT NULL
"""

TASK_TITLES = """
CREATE TEMP TABLE timeline_bulk_task_titles AS
SELECT e.aggregate_id AS task_id, e.position, plain(e.state, 'title') AS title
FROM events e JOIN timeline_bulk_tasks t ON t.task_id = e.aggregate_id
WHERE e.name IN ('Task.Created', 'Task.Retitled') AND e.position >= t.position
"""

# The change rows of records' own events. ``account`` and ``previous_account`` are
# ``_name(id, "account")``: NULL for no id, "unknown account" for one not seen yet.
OWN = """
INSERT INTO timeline
WITH own AS MATERIALIZED (
    SELECT position, aggregate_id, name, recorded_at, actor, x, keys, codes,
           {references}
    FROM (SELECT *, {extract} AS x, {keys_and_codes}
          FROM events WHERE name IN ({own_events}))
),
-- The ids whose names a change shows, and (Deal.ContactsChanged) where in its list.
lookups AS (
    SELECT position, 'account' AS slot, account_ref AS id, 0 AS i
    FROM own WHERE account_ref IS NOT NULL
    UNION ALL
    SELECT position, 'previous_account', previous_account_ref, 0
    FROM own WHERE previous_account_ref IS NOT NULL
    UNION ALL
    SELECT position, 'stage', stage_ref, 0 FROM own WHERE stage_ref IS NOT NULL
    UNION ALL
    SELECT position, 'previous_stage', previous_stage_ref, 0
    FROM own WHERE previous_stage_ref IS NOT NULL
    UNION ALL
    SELECT position, 'contact', unnest(ids), generate_subscripts(ids, 1)
    FROM (SELECT position, timeline_uuids(x[1]) AS ids
          FROM own WHERE name = 'Deal.ContactsChanged')
),
names AS (
    SELECT record_id AS id, position, record_name AS name FROM timeline_bulk_records
    UNION ALL
    SELECT stage_id, position, stage_name FROM timeline_bulk_stages
),
-- Each name as it was at the change: the last record or stage event before it. An
-- unseen account or contact is "unknown …" (``_name``); none is NULL.
found AS (
    SELECT l.position,
           any_value(coalesce(n.name, 'unknown account'))
               FILTER (WHERE l.slot = 'account') AS account,
           any_value(coalesce(n.name, 'unknown account'))
               FILTER (WHERE l.slot = 'previous_account') AS previous_account,
           any_value(n.name) FILTER (WHERE l.slot = 'stage') AS stage,
           any_value(n.name) FILTER (WHERE l.slot = 'previous_stage') AS previous_stage,
           list(coalesce(n.name, 'unknown contact') ORDER BY l.i)
               FILTER (WHERE l.slot = 'contact') AS contact_names
    FROM lookups l
    ASOF LEFT JOIN names n ON n.id = l.id AND n.position < l.position
    GROUP BY l.position
),
named AS (
    SELECT own.*, f.account, f.previous_account,
           coalesce(f.stage, 'unknown stage') AS stage,
           coalesce(f.previous_stage, 'unknown stage') AS previous_stage,
           coalesce(f.contact_names, []) AS contact_names
    FROM own LEFT JOIN found f USING (position)
)
SELECT lower(split_part(name, '.', 1)), aggregate_id, position, 'change', name,
       lower(split_part(name, '.', 1)), aggregate_id, recorded_at, recorded_at, actor,
       CASE name {summaries} END,
       -- {{**data, **extra}}
       timeline_fix('{{' || concat_ws(',', nullif(timeline_members(x, keys, codes), ''),
                                      CASE name {extras} END) || '}}'),
       false
FROM named
"""

# Account.DetailsChanged and Contact.DetailsChanged: each field compared with the
# record's fields before (none: every field not null changed).
DETAILS_CHANGED = """
INSERT INTO timeline
WITH diffed AS (
    SELECT *,
           CASE record_kind {changes} END AS changes,
           CASE record_kind {others} END AS others
    FROM timeline_bulk_records
    WHERE event IN ('Account.DetailsChanged', 'Contact.DetailsChanged')
)
SELECT record_kind, record_id, position, 'change', event, record_kind, record_id,
       recorded_at, recorded_at, actor,
       CASE WHEN before_name IS NOT NULL AND before_name <> record_name THEN
                'Renamed from ' || before_name || ' to ' || record_name
                || CASE WHEN others <> '' THEN '; also changed ' || others ELSE '' END
            WHEN others <> '' THEN 'Changed ' || others
            ELSE 'Details changed' END,
       timeline_fix('{{"changes":{{' || changes || '}}}}'),
       false
FROM diffed
"""

# Task.Created, Task.Completed and Task.Reopened of linked tasks, on the linked
# record's timeline, with the task's title then.
TASK_CHANGES = """
INSERT INTO timeline
WITH changes AS (
    SELECT e.position, e.aggregate_id AS task_id, e.name, e.recorded_at, e.actor,
           t.record_kind, t.record_id, timeline_members(e.x, e.keys, e.codes) AS data
    FROM (SELECT *, {extract} AS x, {keys_and_codes} FROM events
          WHERE name IN ('Task.Created', 'Task.Completed', 'Task.Reopened')) e
    JOIN timeline_bulk_tasks t ON t.task_id = e.aggregate_id AND e.position >= t.position
)
SELECT c.record_kind, c.record_id, c.position, 'change', c.name, 'task', c.task_id,
       c.recorded_at, c.recorded_at, c.actor,
       'Task ' || lower(split_part(c.name, '.', 2)) || ': ' || tt.title,
       -- {{"task_id", "title", **data}}: Task.Created's data starts with its title.
       timeline_fix('{{"task_id":"' || c.task_id || '"'
           || CASE WHEN c.name = 'Task.Created' THEN ''
                   ELSE ',"title":' || timeline_json(tt.title) END
           || CASE WHEN c.data <> '' THEN ',' || c.data ELSE '' END || '}}'),
       false
FROM changes c
ASOF JOIN timeline_bulk_task_titles tt ON tt.task_id = c.task_id AND tt.position <= c.position
"""

# The interactions logged before an event of theirs: the handlers ignore the others'.
_LOGGED_BEFORE = """EXISTS (SELECT 1 FROM events l WHERE l.name IN ({logged_events})
                  AND l.aggregate_id = e.aggregate_id AND l.position < e.position)"""

# Interaction.Corrected: the fields each correction changed (JSON texts as in
# Recorded.data; NULL: unchanged), its changes as the handler's JSON and the labels of
# its summary.
CORRECTIONS = """
CREATE TEMP TABLE timeline_bulk_corrections AS
WITH corrections AS (
    SELECT e.aggregate_id AS interaction_id, e.position, e.recorded_at, e.actor,
           json_extract(e.state, '$.changes') AS changes,
           json_extract(e.state, '$.previous') AS previous
    FROM events e
    WHERE e.name = 'Interaction.Corrected' AND {logged_before}
), fields AS (
    SELECT c.interaction_id, c.position, f.key AS field, f.id AS ord,
           timeline_unwrap(CAST(f.value AS VARCHAR)) AS after,
           timeline_unwrap(CAST(json_extract(c.previous, '$."' || f.key || '"') AS VARCHAR))
               AS before
    FROM corrections c, json_each(c.changes) f
), pivoted AS (
    SELECT interaction_id, position,
           {pivot},
           '{{' || string_agg('"' || field || '":{{"before":' || before || ',"after":'
               || after || '}}', ',' ORDER BY ord) || '}}' AS changes,
           -- text.correction: when, who and what it is about first, then the details
           string_agg(timeline_label(field), ', ' ORDER BY
               CASE field WHEN 'occurred_at' THEN 0 WHEN 'contact_ids' THEN 1
                   WHEN 'account_id' THEN 2 WHEN 'deal_id' THEN 3 ELSE 4 END, field)
               AS labels
    FROM fields GROUP BY interaction_id, position
)
SELECT c.interaction_id, c.position, c.recorded_at, c.actor,
       timeline_fix(coalesce(p.changes, '{{}}')) AS changes, coalesce(p.labels, '') AS labels,
       {pivoted}
FROM corrections c LEFT JOIN pivoted p USING (interaction_id, position)
"""

RETRACTIONS = """
CREATE TEMP TABLE timeline_bulk_retractions AS
SELECT e.aggregate_id AS interaction_id, e.position, e.recorded_at, e.actor,
       timeline_fix(CAST(json_extract(e.state, '$.reason') AS VARCHAR)) AS reason
FROM events e
WHERE e.name = 'Interaction.Retracted' AND {logged_before}
"""

# The interactions corrected or retracted: the records each is linked to after every
# event of it (``links(state)``), and before (``records`` of corrections and
# retractions).
LINKS = """
CREATE TEMP TABLE timeline_bulk_links AS
WITH revised AS (
    SELECT interaction_id FROM timeline_bulk_corrections
    UNION SELECT interaction_id FROM timeline_bulk_retractions
), revisions AS (
    SELECT aggregate_id AS interaction_id, position, 'logged' AS what,
           timeline_uuids_json(x[1]) AS contact_ids, timeline_uuid_json(x[2]) AS account_id,
           timeline_uuid_json(x[3]) AS deal_id
    FROM (SELECT aggregate_id, position, CAST(json_extract(state,
              ['$.contact_ids', '$.account_id._data_', '$.deal_id._data_']) AS VARCHAR[]) AS x
          FROM events
          WHERE name IN ({logged_events})
            AND aggregate_id IN (SELECT interaction_id FROM revised))
    UNION ALL
    SELECT interaction_id, position, 'corrected', contact_ids, account_id, deal_id
    FROM timeline_bulk_corrections
    UNION ALL
    SELECT interaction_id, position, 'retracted', NULL, NULL, NULL
    FROM timeline_bulk_retractions
), carried AS (
    SELECT interaction_id, position, what,
           last_value(contact_ids IGNORE NULLS) OVER w AS contact_ids,
           last_value(account_id IGNORE NULLS) OVER w AS account_id,
           last_value(deal_id IGNORE NULLS) OVER w AS deal_id
    FROM revisions
    WINDOW w AS (PARTITION BY interaction_id ORDER BY position
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
), linked AS (
    SELECT interaction_id, position, what,
           list_concat(
               list_transform(CAST(json_extract_string(contact_ids, '$[*]') AS VARCHAR[]),
                   lambda c: ['contact', c]),
               CASE WHEN account_id <> 'null'
                    THEN [['account', timeline_str(account_id)]] END,
               CASE WHEN deal_id <> 'null' THEN [['deal', timeline_str(deal_id)]] END)
               AS links
    FROM carried
)
SELECT *, lag(links) OVER (PARTITION BY interaction_id ORDER BY position) AS links_before
FROM linked
"""

# Every interaction as it ends: each field's last value, its corrections and (last)
# retraction as its state keeps them, the summary of its main rows.
INTERACTIONS = """
CREATE TEMP TABLE timeline_bulk_interactions AS
WITH logged AS (
    SELECT aggregate_id AS interaction_id, position, recorded_at, actor,
           CASE name {kinds} END AS kind,
           CAST(CASE name {paths} END AS VARCHAR[]) AS x
    FROM events WHERE name IN ({logged_events})
), corrected AS (
    SELECT c.interaction_id,
           {last_values},
           '[' || string_agg('{{"position":' || c.position || ',"recorded_at":"'
               || c.recorded_at || '","actor":' || timeline_js(c.actor)
               || ',"changes":' || c.changes || ',"records":'
               -- dict.fromkeys([*links(before), *links(after)])
               || timeline_js(timeline_distinct(list_concat(l.links_before, l.links)))
               || '}}', ',' ORDER BY c.position) || ']' AS corrections,
           arg_max(c.recorded_at, c.position) AS corrected_at
    FROM timeline_bulk_corrections c
    JOIN timeline_bulk_links l ON l.interaction_id = c.interaction_id AND l.position = c.position
    GROUP BY c.interaction_id
), retracted AS (
    SELECT r.interaction_id, r.position, r.recorded_at, r.actor, r.reason,
           l.links_before AS records
    FROM timeline_bulk_retractions r
    JOIN timeline_bulk_links l ON l.interaction_id = r.interaction_id AND l.position = r.position
    QUALIFY row_number() OVER (PARTITION BY r.interaction_id ORDER BY r.position DESC) = 1
), final AS (
    SELECT l.interaction_id, l.position, l.recorded_at, l.actor, l.kind,
           coalesce(c.occurred_at, x[1]) AS occurred_at,
           CASE WHEN c.contact_ids IS NULL THEN timeline_uuids(x[2])
                ELSE CAST(json_extract_string(c.contact_ids, '$[*]') AS VARCHAR[])
                END AS contacts,
           CASE WHEN c.account_id IS NULL THEN timeline_uuid(x[3])
                ELSE timeline_str(c.account_id) END AS account,
           CASE WHEN c.deal_id IS NULL THEN timeline_uuid(x[4])
                ELSE timeline_str(c.deal_id) END AS deal,
           timeline_uuid(x[5]) AS logged_by,
           {details},
           c.corrections, c.corrected_at,
           r.position AS retracted_position, r.recorded_at AS retracted_at,
           r.actor AS retracted_by, r.reason, r.records AS retraction_records
    FROM logged l
    LEFT JOIN corrected c USING (interaction_id)
    LEFT JOIN retracted r USING (interaction_id)
), excerpted AS (
    SELECT *, timeline_excerpt_json(CASE kind WHEN 'email' THEN subject
                                              WHEN 'meeting' THEN title
                                              WHEN 'call' THEN NULL ELSE body END) AS excerpt
    FROM final
)
SELECT interaction_id, position, recorded_at, actor, kind, contacts, account, deal,
       logged_by, occurred_at, corrections, corrected_at, retracted_position, retracted_at,
       retracted_by, reason, retraction_records,
       -- the details, sorted, as JSON members
       timeline_fix(concat_ws(',', {members})) AS details,
       CASE kind
           WHEN 'call' THEN timeline_capitalize(timeline_str(direction)) || ' call, '
               || timeline_duration(CAST(duration_seconds AS BIGINT)) || ', '
               || replace(timeline_str(outcome), '_', ' ')
           WHEN 'email' THEN timeline_capitalize(timeline_str(direction)) || ' e-mail: '
               || coalesce(nullif(excerpt, ''), '(no subject)')
           WHEN 'meeting' THEN coalesce('Meeting: ' || nullif(excerpt, ''), 'Meeting')
           WHEN 'sms' THEN timeline_capitalize(timeline_str(direction)) || ' SMS: ' || excerpt
           ELSE 'Note: ' || excerpt END AS summary
FROM excerpted
"""

# The rows of each interaction (``interaction_rows``): on each record it is linked
# to, and its corrections and retraction as changes.
INTERACTION_ROWS = """
INSERT INTO timeline
WITH interactions AS NOT MATERIALIZED (
    -- (concat: one copy of each piece; every piece is not null)
    SELECT *, retracted_position IS NOT NULL AS retracted,
           concat('{{"interaction_id":"', interaction_id,
                  '","contact_ids":', CAST(to_json(contacts) AS VARCHAR),
                  ',"account_id":', coalesce('"' || account || '"', 'null'),
                  ',"deal_id":', coalesce('"' || deal || '"', 'null'),
                  ',"logged_by":', coalesce('"' || logged_by || '"', 'null'),
                  CASE WHEN details <> '' THEN ',' ELSE '' END, details,
                  ',"corrected_at":', coalesce('"' || corrected_at || '"', 'null'),
                  ',"retraction_reason":', coalesce(reason, 'null'), '}}') AS payload
    FROM timeline_bulk_interactions
), main AS (
    -- one row per linked record, from one pass: the payload is built once
    SELECT * EXCLUDE (ref), ref[1] AS record_kind, ref[2] AS record_id FROM (
        SELECT *, unnest(list_concat(
            list_transform(contacts, lambda c: ['contact', c]),
            CASE WHEN account IS NOT NULL THEN [['account', account]] END,
            CASE WHEN deal IS NOT NULL THEN [['deal', deal]] END)) AS ref
        FROM interactions)
), corrections AS (
    SELECT c.*, i.kind, i.retracted_position IS NOT NULL AS retracted,
           unnest(timeline_distinct(list_concat(l.links_before, l.links))) AS record
    FROM timeline_bulk_corrections c
    JOIN timeline_bulk_interactions i ON i.interaction_id = c.interaction_id
    JOIN timeline_bulk_links l
        ON l.interaction_id = c.interaction_id AND l.position = c.position
), retractions AS (
    SELECT *, unnest(retraction_records) AS record
    FROM timeline_bulk_interactions WHERE retracted_position IS NOT NULL
)
SELECT record_kind, record_id, position, 'interaction', kind, 'interaction',
       interaction_id, timeline_str(occurred_at), recorded_at, actor, summary, payload,
       retracted
FROM main
UNION ALL
SELECT record[1], record[2], position, 'change', 'Interaction.Corrected', 'interaction',
       interaction_id, recorded_at, recorded_at, actor,
       {labels} || ' corrected: ' || labels,
       '{{"interaction_id":"' || interaction_id || '","interaction_kind":"' || kind
           || '","changes":' || changes || '}}',
       retracted
FROM corrections
UNION ALL
SELECT record[1], record[2], retracted_position, 'change', 'Interaction.Retracted',
       'interaction', interaction_id, retracted_at, retracted_at, retracted_by,
       {labels} || ' retracted: ' || timeline_excerpt_json(reason),
       '{{"interaction_id":"' || interaction_id || '","interaction_kind":"' || kind
           || '","reason":' || reason || '}}',
       true
FROM retractions
"""

SOURCES = """
INSERT INTO timeline_sources
SELECT interaction_id, 'interaction',
       concat('{"kind":"', kind, '","position":', position,
              ',"recorded_at":"', recorded_at, '","actor":', timeline_js(actor),
              ',"occurred_at":', occurred_at,
              ',"contact_ids":', CAST(to_json(contacts) AS VARCHAR),
              ',"account_id":', coalesce('"' || account || '"', 'null'),
              ',"deal_id":', coalesce('"' || deal || '"', 'null'),
              ',"logged_by":', coalesce('"' || logged_by || '"', 'null'),
              ',"details":{', details, '},"corrections":', coalesce(corrections, '[]'),
              ',"retraction":', CASE WHEN retracted_position IS NULL THEN 'null'
                  ELSE concat('{"position":', retracted_position,
                              ',"recorded_at":"', retracted_at,
                              '","actor":', timeline_js(retracted_by), ',"reason":', reason,
                              ',"records":', timeline_js(retraction_records), '}') END,
              '}')
FROM timeline_bulk_interactions
UNION ALL
SELECT t.task_id, 'task',
       '{"record_kind":' || timeline_js(t.record_kind) || ',"record_id":"' || t.record_id
           || '","title":' || timeline_js(arg_max(tt.title, tt.position)) || '}'
FROM timeline_bulk_tasks t JOIN timeline_bulk_task_titles tt USING (task_id)
GROUP BY t.task_id, t.record_kind, t.record_id
UNION ALL
SELECT stage_id, 'stage', '{"name":' || timeline_js(arg_max(stage_name, position)) || '}'
FROM timeline_bulk_stages GROUP BY stage_id
"""

RECORD_ROWS = """
INSERT INTO timeline_records
SELECT record_id, record_kind, record_name, timeline_fix(CASE record_kind {fields} END)
FROM timeline_bulk_records
QUALIFY row_number() OVER (PARTITION BY record_id ORDER BY position DESC) = 1
"""

TEMP_TABLES = (
    "timeline_bulk_records",
    "timeline_bulk_stages",
    "timeline_bulk_tasks",
    "timeline_bulk_task_titles",
    "timeline_bulk_corrections",
    "timeline_bulk_retractions",
    "timeline_bulk_links",
    "timeline_bulk_interactions",
)


def _records() -> str:
    kinds = " ".join(f"WHEN '{name}' THEN '{kind}'" for name, kind in RECORD_EVENTS.items())
    paths = " ".join(
        f"WHEN '{kind.capitalize()}' THEN json_extract(state, "
        f"[{', '.join(_path(f, JSON) for f in fields)}])"
        for kind, fields in RECORD_FIELDS.items()
    )
    return RECORDS.format(kinds=kinds, paths=paths, record_events=_quoted(RECORD_EVENTS))


def _details_changed() -> str:
    changes, others = [], []
    for kind in ("account", "contact"):
        members, labels = [], []
        for i, field in enumerate(RECORD_FIELDS[kind], 1):
            before, after = f"coalesce(before_vals[{i}], 'null')", f"vals[{i}]"
            changed = f"{before} <> {after}"
            members.append(
                f'CASE WHEN {changed} THEN \'"{field}":{{"before":\' || {before} '
                f"|| ',\"after\":' || {after} || '}}' END"
            )
            if field not in NAME_FIELDS:
                labels.append(f"CASE WHEN {changed} THEN '{field.replace('_', ' ')}' END")
        changes.append(f"WHEN '{kind}' THEN concat_ws(',', {', '.join(members)})")
        others.append(f"WHEN '{kind}' THEN concat_ws(', ', {', '.join(labels)})")
    return DETAILS_CHANGED.format(changes=" ".join(changes), others=" ".join(others))


def _own() -> str:
    events = _own_events()
    references = []
    for column in ("account_ref", "previous_account_ref", "stage_ref", "previous_stage_ref"):
        branches = " ".join(
            f"WHEN '{name}' THEN timeline_uuid({_field(name, refs[column])})"
            for name, refs in REFERENCES.items()
            if column in refs
        )
        references.append(f"CASE name {branches} END AS {column}")
    summaries = " ".join(
        f"WHEN '{name}' THEN " + summary.format(**{f: _field(name, f) for f, _ in DATA[name]})
        for name, summary in SUMMARIES.items()
    )
    extras = " ".join(
        f"WHEN '{name}' THEN "
        + " || ',' || ".join(f"'\"{key}\":' || timeline_json({column})" for key, column in pairs)
        for name, pairs in EXTRAS.items()
    )
    return OWN.format(
        references=", ".join(references),
        extract=_extract(events),
        own_events=_quoted(events),
        summaries=summaries,
        keys_and_codes=_keys_and_codes(events),
        extras=extras,
    )


def _task_changes() -> str:
    events = {name: DATA[name] for name in ("Task.Created", "Task.Completed", "Task.Reopened")}
    return TASK_CHANGES.format(extract=_extract(events), keys_and_codes=_keys_and_codes(events))


def _interactions() -> str:
    common = ("occurred_at", *LINK_FIELDS, "logged_by")
    details = {kind: sorted(DETAILS_OF[InteractionKind(kind)]) for kind in LOGGED_KINDS.values()}
    # Each kind's fields: the common ones, then its details (sorted), parsed at once.
    paths = " ".join(
        f"WHEN '{name}' THEN json_extract(state, ["
        + ", ".join(_path(f, LOGGED_STORAGE.get(f, JSON)) for f in (*common, *details[kind]))
        + "])"
        for name, kind in LOGGED_KINDS.items()
    )
    detail_columns = []
    for field in DETAIL_FIELDS:
        branches = " ".join(
            f"WHEN '{kind}' THEN x[{len(common) + fields.index(field) + 1}]"
            for kind, fields in details.items()
            if field in fields
        )
        # (a detail is never null: NULL is one its kind has not)
        detail_columns.append(f"coalesce(c.{field}, CASE l.kind {branches} END) AS {field}")
    return INTERACTIONS.format(
        kinds=" ".join(f"WHEN '{name}' THEN '{kind}'" for name, kind in LOGGED_KINDS.items()),
        paths=paths,
        logged_events=_quoted(LOGGED_KINDS),
        last_values=", ".join(
            f"arg_max(c.{f}, c.position) FILTER (WHERE c.{f} IS NOT NULL) AS {f}"
            for f in CORRECTABLE
        ),
        details=", ".join(detail_columns),
        members=", ".join(f"'\"{f}\":' || {f}" for f in DETAIL_FIELDS),
    )


def _labels() -> str:
    return "CASE kind " + " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in LABELS.items()) + " END"


def statements() -> list[str]:
    """The statements that fill the timeline tables, in order."""
    return [
        _records(),
        STAGES,
        TASKS,
        TASK_TITLES,
        _own(),
        _details_changed(),
        _task_changes(),
        CORRECTIONS.format(
            logged_before=_LOGGED_BEFORE.format(logged_events=_quoted(LOGGED_KINDS)),
            pivot=", ".join(f"max(after) FILTER (WHERE field = '{f}') AS {f}" for f in CORRECTABLE),
            pivoted=", ".join(f"p.{f}" for f in CORRECTABLE),
        ),
        RETRACTIONS.format(
            logged_before=_LOGGED_BEFORE.format(logged_events=_quoted(LOGGED_KINDS))
        ),
        LINKS.format(logged_events=_quoted(LOGGED_KINDS)),
        _interactions(),
        INTERACTION_ROWS.format(labels=_labels()),
        SOURCES,
        RECORD_ROWS.format(
            fields=" ".join(
                f"WHEN '{kind}' THEN '{{' || "
                + " || ',' || ".join(f"'\"{f}\":' || vals[{i}]" for i, f in enumerate(fields, 1))
                + " || '}'"
                for kind, fields in RECORD_FIELDS.items()
            )
        ),
    ]


#: Deletes the timeline of removed records and every entry about them (``{removed}``:
#: a query of their ids). The handlers run it after a batch with removals.
PURGE_SQL = "DELETE FROM timeline WHERE record_id IN ({removed}) OR entity_id IN ({removed})"


def build(con: duckdb.DuckDBPyConnection) -> None:
    """Fill the (empty) timeline tables from the relation ``events``."""
    for macro in MACROS:
        con.execute(macro)
    # The temporary tables belong to the builder's transaction: a failure drops them.
    for statement in statements():
        con.execute(statement)
    for table in TEMP_TABLES:
        con.execute(f"DROP TABLE {table}")
    # Removed records: what the handlers purge at the removal and never write after it
    # (a removed contact may be erased later: the handlers keep the last position).
    con.execute(
        "INSERT INTO timeline_removed SELECT CAST(aggregate_id AS UUID), max(position) "
        f"FROM events WHERE name IN ({REMOVED_SQL}) GROUP BY aggregate_id"
    )
    con.execute(PURGE_SQL.format(removed="SELECT record_id FROM timeline_removed"))
