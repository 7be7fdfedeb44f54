"""The directory (:class:`projections.directory.Directory`) built in bulk: one
``INSERT … SELECT`` per table over the relation ``events`` (see :mod:`projections.bulk`).

The handlers keep one row per account, contact and deal, rewritten whole by each of
its events; so a row is its aggregate's events folded in position order, and every
column is the value the last event that sets it wrote: ``arg_max(…, position)``
filtered to those events. ``updated_*`` is the last handled event of the aggregate,
``created_*`` its first. Three things need more than that:

* a contact's tags, which the handlers change one at a time (append if absent,
  remove every copy): folded in order by ``directory_tags_after``;
* the JSON lists, which the handlers write with ``orjson.dumps``: DuckDB writes
  the same text except that it spells the hex digits of ``\\u00XX`` escapes in upper
  case (``directory_json``);
* an account's ``domain``, which :func:`projections.directory.domain_of` derives
  with ``urllib.parse.urlsplit`` and ``str.lower``: ``DOMAINS`` follows them step by
  step, refusals (``ValueError``: no domain) included. Known to differ only where a
  website's host has a ``Σ`` next to a character that Python's Unicode tables (14.0)
  leave unassigned and DuckDB's regular expressions know.
"""

from __future__ import annotations

import duckdb

# -- orjson's JSON text ------------------------------------------------------------------

#: DuckDB's JSON text of a list of strings as ``orjson.dumps`` writes it: the same but
#: for the hex digits of ``\u00XX`` escapes (control characters), which orjson writes
#: in lower case. Escaped backslashes (``\\``) are set aside first, so that every
#: ``\u00`` left starts an escape.
_JSON = r"""
CREATE OR REPLACE TEMP MACRO directory_json(j) AS
CASE WHEN contains(j, '\u00') THEN replace(
    array_to_string(
        list_transform(
            string_split(replace(j, '\\', chr(1)), '\u00'),
            lambda part, i: CASE WHEN i = 1 THEN part ELSE lower(part[1:2]) || part[3:] END
        ),
        '\u00'
    ),
    chr(1), '\\'
) ELSE j END
"""

# -- a contact's tags --------------------------------------------------------------------

#: A contact's tags after ``steps`` (``{tag, adds}``, in order) from ``created``, as the
#: handlers go: tagging appends a tag if absent, untagging removes every copy.
_TAGS = """
CREATE OR REPLACE TEMP MACRO directory_tags_after(created, steps) AS
list_reduce(
    steps,
    lambda held, step: CASE
        WHEN NOT step.adds THEN list_filter(held, lambda tag: tag <> step.tag)
        WHEN list_contains(held, step.tag) THEN held
        ELSE list_append(held, step.tag)
    END,
    created
)
"""

# -- str.strip and str.lower -------------------------------------------------------------

#: The characters ``str.strip()`` removes (``str.isspace``).
PYTHON_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

#: ``str.lower`` lowers a ``Σ`` to ``ς`` at the end of a word: after a cased letter
#: and not before one, case-ignorable characters (combining marks, ``'``, ``.``, …)
#: skipped on both sides. These classes are Python's (Unicode 14.0): the general
#: categories RE2 knows, and the characters outside them that Python counts too.
_CASED = (
    r"\p{Lu}\p{Ll}\p{Lt}\x{AA}\x{BA}\x{2160}-\x{217F}\x{24B6}-\x{24E9}"
    r"\x{1F130}-\x{1F149}\x{1F150}-\x{1F169}\x{1F170}-\x{1F189}"
)
_CASE_IGNORABLE = (
    r"\p{Mn}\p{Me}\p{Cf}\p{Lm}\p{Sk}\x{27}\x{2E}\x{3A}\x{B7}\x{387}\x{55F}\x{5F4}"
    r"\x{2018}\x{2019}\x{2024}\x{2027}\x{FE13}\x{FE52}\x{FE55}\x{FF07}\x{FF0E}\x{FF1A}"
)
#: A final sigma with what comes before it (a cased letter, then case-ignorables) and
#: after it (case-ignorables, then the end or a character that is neither).
FINAL_SIGMA = (
    f"([{_CASED}][{_CASE_IGNORABLE}]*)Σ([{_CASE_IGNORABLE}]*(?:[^{_CASED}{_CASE_IGNORABLE}]|$))"
)

_STRINGS = (
    # str.strip(): trim() by a set of characters is slow, and mostly has nothing to do
    "CREATE OR REPLACE TEMP MACRO directory_strip(s) AS "
    f"CASE WHEN contains('{PYTHON_WHITESPACE}', s[1]) OR contains('{PYTHON_WHITESPACE}', s[-1]) "
    f"THEN trim(s, '{PYTHON_WHITESPACE}') ELSE s END",
    # f"{first_name} {last_name}".strip()
    "CREATE OR REPLACE TEMP MACRO directory_full_name(first_name, last_name) AS "
    "directory_strip(first_name || ' ' || last_name)",
    # str.lower(): DuckDB's lower() but for a final sigma and "İ" (to "i" and a dot above)
    "CREATE OR REPLACE TEMP MACRO directory_lower(s) AS "
    "CASE WHEN strlen(s) = length(s) THEN lower(s) ELSE lower(replace("
    f"CASE WHEN contains(s, 'Σ') THEN regexp_replace(s, '{FINAL_SIGMA}', '\\1ς\\2', 'g') "
    "ELSE s END, 'İ', 'i̇')) END",
)

# -- domain_of ---------------------------------------------------------------------------

_HEXTET = "[0-9A-Fa-f]{1,4}"
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"


def _ipv6() -> str:
    """An IPv6 address as ``ipaddress.IPv6Address`` takes it: eight hextets, or six
    and an IPv4 address; ``::`` standing for one or more zero hextets."""

    def hextets(count: int) -> str:  # exactly ``count``
        return ":".join([_HEXTET] * count)

    def up_to(count: int) -> str:  # 0 to ``count``
        return "" if count == 0 else f"(?:{_HEXTET}(?::{_HEXTET}){{0,{count - 1}}})?"

    forms = [hextets(8), f"(?:{_HEXTET}:){{6}}{_IPV4}"]
    for left in range(8):
        forms.append(f"{hextets(left)}::{up_to(7 - left)}")
    for left in range(6):
        forms.append(f"{hextets(left)}::(?:{_HEXTET}:){{0,{5 - left}}}{_IPV4}")
    return "(?:" + "|".join(forms) + ")"


#: What ``urlsplit`` accepts between brackets in a netloc: an IPvFuture address, or an
#: IPv6 address with an optional zone (not an IPv4 one).
BRACKETED_HOST = rf"v[a-fA-F0-9]+\..+|{_ipv6()}(?:%[^%]+)?"

#: The characters whose NFKC form holds one of ``/?#@:``: a netloc with one of them is
#: refused (``urllib.parse._checknetloc``).
NFKC_DELIMITERS = (
    r"\x{2047}\x{2048}\x{2049}\x{2100}\x{2101}\x{2105}\x{2106}\x{2A74}\x{FE13}\x{FE16}"
    r"\x{FE55}\x{FE56}\x{FE5F}\x{FE6B}\x{FF03}\x{FF0F}\x{FF1A}\x{FF1F}\x{FF20}"
)

_DOMAIN = (
    # The string urlsplit parses: "//" added unless the website has "://", leading C0
    # controls and spaces stripped, tabs and line breaks removed.
    "CREATE OR REPLACE TEMP MACRO directory_url(website) AS "
    "regexp_replace(regexp_replace("
    "CASE WHEN contains(website, '://') THEN website ELSE '//' || website END, "
    r"'^[\x00-\x20]+', ''), '[\t\r\n]', '', 'g')",
    # The netloc: after the scheme (if any), what "//" starts, up to "/", "?" or "#";
    # empty without "//" (no hostname either way).
    "CREATE OR REPLACE TEMP MACRO directory_netloc(url) AS "
    r"regexp_extract(url, '^(?:[A-Za-z][A-Za-z0-9+.\-]*:)?//([^/?#]*)', 1)",
    # Whether urlsplit takes the netloc (else ValueError: no domain): balanced brackets
    # around a valid address, no character that NFKC turns into a delimiter.
    "CREATE OR REPLACE TEMP MACRO directory_netloc_valid(netloc) AS "
    "contains(netloc, '[') = contains(netloc, ']') "
    "AND (NOT contains(netloc, '[') OR regexp_full_match("
    rf"regexp_extract(netloc, '\[([^\]]*)', 1), '{BRACKETED_HOST}')) "
    f"AND NOT regexp_matches(netloc, '[{NFKC_DELIMITERS}]')",
    # SplitResult.hostname, not yet lowered: after the last "@", between brackets or
    # up to a ":".
    "CREATE OR REPLACE TEMP MACRO directory_hostname(netloc) AS "
    "CASE WHEN contains(string_split(netloc, '@')[-1], '[') "
    r"THEN regexp_extract(string_split(netloc, '@')[-1], '\[([^\]]*)', 1) "
    "ELSE regexp_extract(string_split(netloc, '@')[-1], '^[^:]*') END",
    # ... lowered up to a "%" (an IPv6 zone keeps its case), without "www.": the domain,
    # NULL if empty.
    "CREATE OR REPLACE TEMP MACRO directory_domain_of_host(host) AS "
    "nullif(regexp_replace(directory_lower(split_part(host, '%', 1)) "
    "|| CASE WHEN contains(host, '%') THEN substr(host, strpos(host, '%')) ELSE '' END, "
    r"'^www\.', ''), '')",
)

MACROS = (_JSON, _TAGS, *_STRINGS, *_DOMAIN)

# -- the tables --------------------------------------------------------------------------

#: ``domain_of(website)`` for each row of a relation ``websites(website)``: the CTEs
#: ``netlocs``, ``hosts`` and ``domains(website, domain)``, in steps so that no macro
#: repeats another's work (a website urlsplit refuses has no row in ``domains``).
DOMAINS = """
netlocs AS (
    SELECT website, directory_netloc(directory_url(website)) AS netloc FROM websites
),
hosts AS (
    SELECT website, directory_hostname(netloc) AS host
    FROM netlocs
    WHERE directory_netloc_valid(netloc)
),
domains AS (
    SELECT website, directory_domain_of_host(host) AS domain FROM hosts
)"""

#: Each statement reads the fields its events hold with one parse of the stored JSON
#: (``from_json``): wrapped values (UUIDs, decimals, enums) as ``{"_data_": …}``, lists
#: of strings as their JSON text.

ACCOUNTS = """
INSERT INTO directory_accounts BY NAME
WITH account_events AS (
    SELECT aggregate_id, position, name, recorded_at, from_json(state, '{
        "name": "VARCHAR", "website": "VARCHAR", "industry": "VARCHAR",
        "country": "VARCHAR", "address": "VARCHAR",
        "owner_id": {"_data_": "VARCHAR"}, "parent_id": {"_data_": "VARCHAR"}
    }') AS e
    FROM events
    WHERE name IN ('Account.Registered', 'Account.DetailsChanged', 'Account.OwnerChanged',
                   'Account.ParentChanged', 'Account.Archived', 'Account.Restored')
),
accounts AS (
    SELECT
        aggregate_id AS id,
        arg_max({
            'name': e.name, 'website': e.website, 'industry': e.industry,
            'country': e.country, 'address': e.address
        }, position) FILTER (WHERE name IN ('Account.Registered', 'Account.DetailsChanged'))
            AS details,
        arg_max(e.owner_id._data_, position)
            FILTER (WHERE name IN ('Account.Registered', 'Account.OwnerChanged')) AS owner_id,
        -- arg_max_null: a move to the top (NULL) is a value like any other
        arg_max_null(e.parent_id._data_, position)
            FILTER (WHERE name IN ('Account.Registered', 'Account.ParentChanged')) AS parent_id,
        -- registered unarchived
        arg_max(name = 'Account.Archived', position)
            FILTER (WHERE name IN ('Account.Registered', 'Account.Archived',
                                   'Account.Restored')) AS archived,
        min(position) FILTER (WHERE name = 'Account.Registered') AS created_position,
        arg_min(recorded_at, position) FILTER (WHERE name = 'Account.Registered') AS created_at,
        max(position) AS updated_position,
        arg_max(recorded_at, position) AS updated_at
    FROM account_events
    GROUP BY aggregate_id
),
websites AS (
    SELECT DISTINCT details.website AS website FROM accounts
),
{DOMAINS}
SELECT
    CAST(id AS UUID) AS id,
    details.name,
    details.website,
    domains.domain,
    details.industry,
    details.country,
    details.address,
    CAST(canonical_uuid(owner_id) AS UUID) AS owner_id,
    CAST(canonical_uuid(parent_id) AS UUID) AS parent_id,
    archived,
    created_position,
    updated_position,
    CAST(created_at AS TIMESTAMPTZ) AS created_at,
    CAST(updated_at AS TIMESTAMPTZ) AS updated_at
FROM accounts
LEFT JOIN domains ON domains.website = accounts.details.website
WHERE created_position IS NOT NULL
""".replace("{DOMAINS}", DOMAINS.strip())

CONTACTS = """
INSERT INTO directory_contacts BY NAME
WITH contact_events AS (
    SELECT aggregate_id, position, name, recorded_at, from_json(state, '{
        "first_name": "VARCHAR", "last_name": "VARCHAR", "job_title": "VARCHAR",
        "emails": "JSON", "phones": "JSON", "tags": "JSON", "tag": "VARCHAR",
        "account_id": {"_data_": "VARCHAR"}, "owner_id": {"_data_": "VARCHAR"},
        "lifecycle_stage": {"_data_": "VARCHAR"}, "stage": {"_data_": "VARCHAR"}
    }') AS e
    FROM events
    WHERE name IN ('Contact.Created', 'Contact.DetailsChanged', 'Contact.EmailsChanged',
                   'Contact.AccountChanged', 'Contact.OwnerChanged', 'Contact.Tagged',
                   'Contact.Untagged', 'Contact.LifecycleStageChanged')
),
contacts AS (
    SELECT
        aggregate_id AS id,
        arg_max({
            'first_name': e.first_name, 'last_name': e.last_name,
            'phones': e.phones, 'job_title': e.job_title
        }, position) FILTER (WHERE name IN ('Contact.Created', 'Contact.DetailsChanged'))
            AS details,
        arg_max(e.emails, position)
            FILTER (WHERE name IN ('Contact.Created', 'Contact.EmailsChanged')) AS emails,
        any_value(e.tags) FILTER (WHERE name = 'Contact.Created') AS created_tags,
        list({'tag': e.tag, 'adds': name = 'Contact.Tagged'} ORDER BY position)
            FILTER (WHERE name IN ('Contact.Tagged', 'Contact.Untagged')) AS tag_steps,
        -- arg_max_null: unlinking (NULL) is a value like any other
        arg_max_null(e.account_id._data_, position)
            FILTER (WHERE name IN ('Contact.Created', 'Contact.AccountChanged')) AS account_id,
        arg_max(e.owner_id._data_, position)
            FILTER (WHERE name IN ('Contact.Created', 'Contact.OwnerChanged')) AS owner_id,
        arg_max(coalesce(e.lifecycle_stage._data_, e.stage._data_), position)
            FILTER (WHERE name IN ('Contact.Created', 'Contact.LifecycleStageChanged'))
            AS lifecycle_stage,
        min(position) FILTER (WHERE name = 'Contact.Created') AS created_position,
        arg_min(recorded_at, position) FILTER (WHERE name = 'Contact.Created') AS created_at,
        max(position) AS updated_position,
        arg_max(recorded_at, position) AS updated_at
    FROM contact_events
    GROUP BY aggregate_id
)
SELECT
    CAST(id AS UUID) AS id,
    directory_full_name(details.first_name, details.last_name) AS name,
    details.first_name,
    details.last_name,
    directory_json(emails) AS emails,
    directory_json(details.phones) AS phones,
    details.job_title,
    CAST(canonical_uuid(account_id) AS UUID) AS account_id,
    CAST(canonical_uuid(owner_id) AS UUID) AS owner_id,
    -- never tagged nor untagged: the JSON text it was created with
    directory_json(CASE WHEN tag_steps IS NULL THEN created_tags ELSE CAST(to_json(
        directory_tags_after(from_json(created_tags, '["VARCHAR"]'), tag_steps)
    ) AS VARCHAR) END) AS tags,
    lifecycle_stage,
    created_position,
    updated_position,
    CAST(created_at AS TIMESTAMPTZ) AS created_at,
    CAST(updated_at AS TIMESTAMPTZ) AS updated_at
FROM contacts
WHERE created_position IS NOT NULL
"""

DEALS = """
INSERT INTO directory_deals BY NAME
WITH deal_events AS (
    SELECT aggregate_id, position, name, recorded_at,
        -- (Won, Lost and Reopened hold nothing the directory keeps)
        CASE WHEN name IN ('Deal.Opened', 'Deal.AmountChanged') THEN from_json(state, '{
            "account_id": {"_data_": "VARCHAR"}, "amount": {"_data_": "VARCHAR"},
            "currency": "VARCHAR"
        }') END AS e
    FROM events
    WHERE name IN ('Deal.Opened', 'Deal.AmountChanged', 'Deal.Won', 'Deal.Lost',
                   'Deal.Reopened')
),
deals AS (
    SELECT
        aggregate_id AS id,
        arg_max_null(e.account_id._data_, position)
            FILTER (WHERE name = 'Deal.Opened') AS account_id,
        -- the amount as its decimal string, cast like the handlers' rows
        arg_max({'amount': e.amount._data_, 'currency': e.currency}, position)
            FILTER (WHERE name IN ('Deal.Opened', 'Deal.AmountChanged')) AS money,
        arg_max(
            CASE name WHEN 'Deal.Won' THEN 'won' WHEN 'Deal.Lost' THEN 'lost' ELSE 'open' END,
            position
        ) FILTER (WHERE name <> 'Deal.AmountChanged') AS status,
        count(*) FILTER (WHERE name = 'Deal.Opened') AS opened,
        max(position) AS updated_position,
        arg_max(recorded_at, position) AS updated_at
    FROM deal_events
    GROUP BY aggregate_id
)
SELECT
    CAST(id AS UUID) AS id,
    CAST(canonical_uuid(account_id) AS UUID) AS account_id,
    CAST(money.amount AS DECIMAL(38, 4)) AS amount,
    money.currency,
    status,
    updated_position,
    CAST(updated_at AS TIMESTAMPTZ) AS updated_at
FROM deals
WHERE opened > 0
"""


def build(con: duckdb.DuckDBPyConnection) -> None:
    """Fill the directory's (empty) tables from the relation ``events``."""
    for macro in MACROS:
        con.execute(macro)
    for statement in (ACCOUNTS, CONTACTS, DEALS):
        con.execute(statement)
