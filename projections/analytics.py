"""Analytics: the reports — stage transitions, funnel conversion, win rate and sales
cycle, activity per user and day, and the weighted forecast.

The projector keeps the facts; the query functions aggregate them:

- ``analytics_transitions``: one row per change of a deal's stage or outcome, with the
  recorded time, the seconds spent in the previous stage (or outcome) and the owner at
  the time. Opening a deal enters its first stage (no previous stage); winning and
  losing move it to the outcome ``"won"``/``"lost"``; reopening moves it from the
  outcome back to a stage.
- ``analytics_deals``: every deal as it stands now (stage, status, owner, amount,
  expected close, when it was opened, when it was last closed).
- ``analytics_stages``: every pipeline's stages in their current order, with their names
  and probabilities (re-weighting a stage re-weights the forecast of its open deals).
- ``analytics_interactions``: every interaction not retracted, with who logged it, its
  kind and when it happened (corrections move it).

Times are UTC throughout; periods and days are cut in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, localcontext
from typing import Any, Literal

import duckdb

from projections import bulk_analytics
from projections.events import Recorded
from projections.projector import Projector, on
from projections.scope import Owners, owned_by, owner_values
from projections.tables import Column, Table, rows_of

WON = "won"
LOST = "lost"
OPEN = "open"

#: The interaction kind each logged event stands for.
LOGGED_KINDS = {
    "Interaction.CallLogged": "call",
    "Interaction.EmailLogged": "email",
    "Interaction.MeetingLogged": "meeting",
    "Interaction.NoteLogged": "note",
    "Interaction.SmsLogged": "sms",
}

Period = Literal["month", "quarter"]


def _time(value: str | datetime) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def month_of(moment: datetime | date) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def quarter_of(moment: datetime | date) -> str:
    return f"{moment.year:04d}-Q{(moment.month - 1) // 3 + 1}"


@dataclass
class StageInfo:
    id: str
    name: str
    probability: int


@dataclass
class DealState:
    id: str
    pipeline_id: str
    stage_id: str
    status: str
    owner_id: str
    amount: str
    currency: str
    expected_close_date: str | None
    opened_at: datetime
    #: When the deal entered its current stage, or its outcome when closed.
    entered_at: datetime
    closed_at: datetime | None

    @property
    def place(self) -> str:
        """Where the deal is: its stage id when open, else its outcome."""
        return self.stage_id if self.status == OPEN else self.status

    def row(self) -> tuple[Any, ...]:
        closed = self.closed_at
        expected = (
            date.fromisoformat(self.expected_close_date) if self.expected_close_date else None
        )
        return (
            self.id,
            self.pipeline_id,
            self.stage_id,
            self.status,
            self.owner_id,
            self.amount,
            self.currency,
            self.expected_close_date,
            month_of(expected) if expected else None,
            _iso(self.opened_at),
            _iso(self.entered_at),
            _iso(closed),
            month_of(closed) if closed else None,
            quarter_of(closed) if closed else None,
            (closed - self.opened_at).total_seconds() if closed else None,
        )


@dataclass
class InteractionState:
    id: str
    user_id: str
    kind: str
    occurred_at: datetime

    def row(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.user_id,
            self.kind,
            _iso(self.occurred_at),
            self.occurred_at.date().isoformat(),
        )


class Analytics(Projector):
    name = "analytics"
    bulk_without_removed = True

    def declare_tables(self) -> list[Table]:
        self.transitions = Table(
            "analytics_transitions",
            [
                Column("position", "BIGINT", False),
                Column("deal_id", "UUID", False),
                Column("pipeline_id", "UUID", False),
                Column("kind", "VARCHAR", False),
                Column("from_stage", "VARCHAR"),
                Column("to_stage", "VARCHAR", False),
                Column("at", "TIMESTAMPTZ", False),
                Column("seconds_in_previous", "DOUBLE"),
                Column("owner_id", "UUID", False),
            ],
            key=["position"],
            indexes=["deal_id"],
        )
        self.deals_table = Table(
            "analytics_deals",
            [
                Column("deal_id", "UUID", False),
                Column("pipeline_id", "UUID", False),
                Column("stage_id", "UUID", False),
                Column("status", "VARCHAR", False),
                Column("owner_id", "UUID", False),
                Column("amount", "DECIMAL(19,4)", False),
                Column("currency", "VARCHAR", False),
                Column("expected_close_date", "DATE"),
                Column("expected_close_month", "VARCHAR"),
                Column("opened_at", "TIMESTAMPTZ", False),
                Column("entered_at", "TIMESTAMPTZ", False),
                Column("closed_at", "TIMESTAMPTZ"),
                Column("closed_month", "VARCHAR"),
                Column("closed_quarter", "VARCHAR"),
                Column("cycle_seconds", "DOUBLE"),
            ],
            key=["deal_id"],
        )
        self.stages_table = Table(
            "analytics_stages",
            [
                Column("pipeline_id", "UUID", False),
                Column("stage_id", "UUID", False),
                Column("ord", "INTEGER", False),
                Column("name", "VARCHAR", False),
                Column("probability", "INTEGER", False),
            ],
            key=["pipeline_id", "stage_id"],
        )
        self.interactions_table = Table(
            "analytics_interactions",
            [
                Column("interaction_id", "UUID", False),
                Column("user_id", "VARCHAR", False),
                Column("kind", "VARCHAR", False),
                Column("occurred_at", "TIMESTAMPTZ", False),
                Column("day", "DATE", False),
            ],
            key=["interaction_id"],
        )
        return [self.transitions, self.deals_table, self.stages_table, self.interactions_table]

    def load(self, con: duckdb.DuckDBPyConnection) -> None:
        self.pipelines: dict[str, list[StageInfo]] = {}
        for pipeline_id, stage_id, name, probability in con.execute(
            "SELECT CAST(pipeline_id AS VARCHAR), CAST(stage_id AS VARCHAR), name, probability "
            "FROM analytics_stages ORDER BY pipeline_id, ord"
        ).fetchall():
            self.pipelines.setdefault(pipeline_id, []).append(
                StageInfo(stage_id, name, probability)
            )
        self.deals: dict[str, DealState] = {}
        for row in rows_of(
            con,
            "SELECT CAST(deal_id AS VARCHAR) AS id, CAST(pipeline_id AS VARCHAR) AS pipeline_id, "
            "CAST(stage_id AS VARCHAR) AS stage_id, status, CAST(owner_id AS VARCHAR) AS owner_id, "
            "CAST(amount AS VARCHAR) AS amount, currency, "
            "CAST(expected_close_date AS VARCHAR) AS expected_close_date, "
            "opened_at, entered_at, closed_at FROM analytics_deals",
        ):
            opened_at, entered_at, closed_at = (
                row.pop("opened_at"),
                row.pop("entered_at"),
                row.pop("closed_at"),
            )
            deal = DealState(
                **row,
                opened_at=_time(opened_at),
                entered_at=_time(entered_at),
                closed_at=_time(closed_at) if closed_at else None,
            )
            self.deals[deal.id] = deal
        #: Deals removed in the batch being applied: their transitions go after it.
        self.removed_deals: list[str] = []
        self.interactions: dict[str, InteractionState] = {
            interaction_id: InteractionState(interaction_id, user_id, kind, _time(occurred_at))
            for interaction_id, user_id, kind, occurred_at in con.execute(
                "SELECT CAST(interaction_id AS VARCHAR), user_id, kind, occurred_at "
                "FROM analytics_interactions"
            ).fetchall()
        }

    def build_in_bulk(self, con: duckdb.DuckDBPyConnection) -> bool:
        bulk_analytics.build(con)
        return True

    # Pipelines: stage order, names and probabilities

    def _save_stages(self, pipeline_id: str) -> None:
        for ord_, stage in enumerate(self.pipelines[pipeline_id]):
            self.stages_table.upsert(
                (pipeline_id, stage.id),
                (pipeline_id, stage.id, ord_, stage.name, stage.probability),
            )

    def _stage(self, pipeline_id: str, stage_id: str) -> StageInfo | None:
        return next((s for s in self.pipelines.get(pipeline_id, []) if s.id == stage_id), None)

    @on("Pipeline.Created")
    def pipeline_created(self, event: Recorded) -> None:
        self.pipelines[event.aggregate_id] = [
            StageInfo(s["id"], s["name"], s["probability"]) for s in event.data["stages"]
        ]
        self._save_stages(event.aggregate_id)

    @on("Pipeline.StageAdded")
    def stage_added(self, event: Recorded) -> None:
        stage = event.data["stage"]
        stages = self.pipelines.setdefault(event.aggregate_id, [])
        stages.insert(
            event.data["position"], StageInfo(stage["id"], stage["name"], stage["probability"])
        )
        self._save_stages(event.aggregate_id)

    @on("Pipeline.StageRenamed")
    def stage_renamed(self, event: Recorded) -> None:
        stage = self._stage(event.aggregate_id, event.data["stage_id"])
        if stage is not None:
            stage.name = event.data["name"]
            self._save_stages(event.aggregate_id)

    @on("Pipeline.StageReweighted")
    def stage_reweighted(self, event: Recorded) -> None:
        stage = self._stage(event.aggregate_id, event.data["stage_id"])
        if stage is not None:
            stage.probability = event.data["probability"]
            self._save_stages(event.aggregate_id)

    @on("Pipeline.StagesReordered")
    def stages_reordered(self, event: Recorded) -> None:
        stages = self.pipelines.get(event.aggregate_id, [])
        rank = {stage_id: n for n, stage_id in enumerate(event.data["order"])}
        stages.sort(key=lambda s: rank.get(s.id, len(rank)))
        if stages:
            self._save_stages(event.aggregate_id)

    # Deals: transitions and the current state

    def _move(self, event: Recorded, deal: DealState, kind: str, to: str) -> None:
        """Record a transition of ``deal`` from where it is to ``to``."""
        at = _time(event.recorded_at)
        self.transitions.append(
            (
                event.position,
                deal.id,
                deal.pipeline_id,
                kind,
                deal.place,
                to,
                _iso(at),
                (at - deal.entered_at).total_seconds(),
                deal.owner_id,
            )
        )
        deal.entered_at = at

    def _save_deal(self, deal: DealState) -> None:
        self.deals_table.upsert(deal.id, deal.row())

    @on("Deal.Opened")
    def deal_opened(self, event: Recorded) -> None:
        data = event.data
        at = _time(event.recorded_at)
        deal = DealState(
            id=event.aggregate_id,
            pipeline_id=data["pipeline_id"],
            stage_id=data["stage_id"],
            status=OPEN,
            owner_id=data["owner_id"],
            amount=data["amount"],
            currency=data["currency"],
            expected_close_date=data["expected_close_date"],
            opened_at=at,
            entered_at=at,
            closed_at=None,
        )
        self.deals[deal.id] = deal
        self.transitions.append(
            (
                event.position,
                deal.id,
                deal.pipeline_id,
                "opened",
                None,
                deal.stage_id,
                _iso(at),
                None,
                deal.owner_id,
            )
        )
        self._save_deal(deal)

    @on("Deal.StageChanged")
    def deal_moved(self, event: Recorded) -> None:
        deal = self.deals[event.aggregate_id]
        self._move(event, deal, "moved", event.data["stage_id"])
        deal.stage_id = event.data["stage_id"]
        self._save_deal(deal)

    @on("Deal.Won", "Deal.Lost")
    def deal_closed(self, event: Recorded) -> None:
        deal = self.deals[event.aggregate_id]
        outcome = WON if event.name == "Deal.Won" else LOST
        self._move(event, deal, outcome, outcome)
        deal.status = outcome
        deal.closed_at = deal.entered_at
        self._save_deal(deal)

    @on("Deal.Reopened")
    def deal_reopened(self, event: Recorded) -> None:
        deal = self.deals[event.aggregate_id]
        self._move(event, deal, "reopened", event.data["stage_id"])
        deal.stage_id = event.data["stage_id"]
        deal.status = OPEN
        deal.closed_at = None
        self._save_deal(deal)

    @on("Deal.AmountChanged")
    def deal_amount_changed(self, event: Recorded) -> None:
        deal = self.deals[event.aggregate_id]
        deal.amount = event.data["amount"]
        deal.currency = event.data["currency"]
        self._save_deal(deal)

    @on("Deal.OwnerChanged")
    def deal_reassigned(self, event: Recorded) -> None:
        deal = self.deals[event.aggregate_id]
        deal.owner_id = event.data["owner_id"]
        self._save_deal(deal)

    @on("Deal.CloseDateChanged")
    def deal_close_date_changed(self, event: Recorded) -> None:
        deal = self.deals[event.aggregate_id]
        deal.expected_close_date = event.data["expected_close_date"]
        self._save_deal(deal)

    @on("Deal.Removed")
    def deal_removed(self, event: Recorded) -> None:
        # As if it had never been: no row, no transition (funnel, win rate, cycle, forecast).
        if self.deals.pop(event.aggregate_id, None) is not None:
            self.deals_table.delete(event.aggregate_id)
            self.removed_deals.append(event.aggregate_id)

    def after_flush(self, con: duckdb.DuckDBPyConnection) -> None:
        if self.removed_deals:
            con.execute(
                "DELETE FROM analytics_transitions "
                "WHERE deal_id IN (SELECT unnest(CAST(? AS UUID[])))",
                [self.removed_deals],
            )
            self.removed_deals = []

    # Interactions: who logged what kind, on which day

    @on(*LOGGED_KINDS)
    def interaction_logged(self, event: Recorded) -> None:
        # ``logged_by`` is None only for the system actor.
        interaction = InteractionState(
            id=event.aggregate_id,
            user_id=event.data["logged_by"] or "system",
            kind=LOGGED_KINDS[event.name],
            occurred_at=_time(event.data["occurred_at"]),
        )
        self.interactions[interaction.id] = interaction
        self.interactions_table.upsert(interaction.id, interaction.row())

    @on("Interaction.Corrected")
    def interaction_corrected(self, event: Recorded) -> None:
        changes = event.data["changes"]
        interaction = self.interactions.get(event.aggregate_id)
        if interaction is not None and "occurred_at" in changes:
            interaction.occurred_at = _time(changes["occurred_at"])
            self.interactions_table.upsert(interaction.id, interaction.row())

    @on("Interaction.Retracted")
    def interaction_retracted(self, event: Recorded) -> None:
        if self.interactions.pop(event.aggregate_id, None) is not None:
            self.interactions_table.delete(event.aggregate_id)


# Queries


def _where(conditions: list[tuple[str, Any]]) -> tuple[str, list[Any]]:
    """``WHERE`` over the conditions whose value is given, and their parameters."""
    given = [(clause, value) for clause, value in conditions if value is not None]
    if not given:
        return "", []
    return " WHERE " + " AND ".join(c for c, _ in given), [v for _, v in given]


def stage_transitions(
    con: duckdb.DuckDBPyConnection,
    *,
    deal_id: str | None = None,
    pipeline_id: str | None = None,
    owner_id: str | None = None,
    owners: Owners = None,
    since: str | None = None,
    until: str | None = None,
    after: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Stage transitions in position order; ``since`` ≤ ``at`` < ``until``; ``after`` is
    the position of the last row of the previous page. ``owner_id`` is the owner at the
    time of the transition. Stage names are the stages' current names; an outcome is
    named by itself (``won``/``lost``)."""
    where, params = _where(
        [
            ("t.deal_id = CAST(? AS UUID)", deal_id),
            ("t.pipeline_id = CAST(? AS UUID)", pipeline_id),
            ("t.owner_id = CAST(? AS UUID)", owner_id),
            (owned_by("t.owner_id"), owner_values(owners)),
            ("t.at >= CAST(? AS TIMESTAMPTZ)", since),
            ("t.at < CAST(? AS TIMESTAMPTZ)", until),
            ("t.position > ?", after),
        ]
    )
    return rows_of(
        con,
        "SELECT t.position, CAST(t.deal_id AS VARCHAR) AS deal_id, "
        "CAST(t.pipeline_id AS VARCHAR) AS pipeline_id, t.kind, "
        "t.from_stage, CASE WHEN t.from_stage IN ('won', 'lost') THEN t.from_stage "
        "ELSE f.name END AS from_stage_name, "
        "t.to_stage, CASE WHEN t.to_stage IN ('won', 'lost') THEN t.to_stage "
        "ELSE s.name END AS to_stage_name, "
        "t.at, t.seconds_in_previous, CAST(t.owner_id AS VARCHAR) AS owner_id "
        "FROM analytics_transitions t "
        "LEFT JOIN analytics_stages f ON f.pipeline_id = t.pipeline_id "
        "AND CAST(f.stage_id AS VARCHAR) = t.from_stage "
        "LEFT JOIN analytics_stages s ON s.pipeline_id = t.pipeline_id "
        "AND CAST(s.stage_id AS VARCHAR) = t.to_stage"
        f"{where} ORDER BY t.position LIMIT ?",
        [*params, limit],
    )


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def funnel(
    con: duckdb.DuckDBPyConnection,
    pipeline_id: str,
    *,
    owners: Owners = None,
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any] | None:
    """Conversion through a pipeline's stages, in their current order; None for a
    pipeline the read model does not know.

    A deal has *reached* a stage when it entered that stage or any later one, at any
    time (also before a reopen); a won deal has reached every stage, won being the step
    after the last. ``conversion_to_next`` is reached(next stage) / reached(stage), and
    for the last stage won / reached; ``conversion_to_won`` is won / reached(stage).
    Won and lost are the deals' current outcomes. ``since``/``until`` keep the deals
    opened in ``since`` ≤ opened_at < ``until``.
    """
    stages = rows_of(
        con,
        "SELECT CAST(stage_id AS VARCHAR) AS stage_id, name, probability, ord "
        "FROM analytics_stages WHERE pipeline_id = CAST(? AS UUID) ORDER BY ord",
        [pipeline_id],
    )
    if not stages:
        return None
    last = len(stages) - 1
    where, params = _where(
        [
            ("d.pipeline_id = CAST(? AS UUID)", pipeline_id),
            (owned_by("d.owner_id"), owner_values(owners)),
            ("d.opened_at >= CAST(? AS TIMESTAMPTZ)", since),
            ("d.opened_at < CAST(? AS TIMESTAMPTZ)", until),
        ]
    )
    # Per deal: the furthest stage it reached (every stage when won), and its status.
    reach = con.execute(
        "SELECT furthest, status, count(*) FROM ("
        "  SELECT d.deal_id, d.status, "
        "  CASE WHEN d.status = 'won' THEN ? ELSE max(s.ord) END AS furthest "
        "  FROM analytics_deals d "
        "  LEFT JOIN analytics_transitions t ON t.deal_id = d.deal_id "
        "  LEFT JOIN analytics_stages s ON s.pipeline_id = d.pipeline_id "
        "  AND CAST(s.stage_id AS VARCHAR) = t.to_stage"
        f"{where} GROUP BY d.deal_id, d.status"
        ") GROUP BY furthest, status",
        [last, *params],
    ).fetchall()
    reached = [0] * len(stages)
    deals = {OPEN: 0, WON: 0, LOST: 0}
    for furthest, status, count in reach:
        deals[status] += count
        if furthest is not None:
            for n in range(furthest + 1):
                reached[n] += count
    won = deals[WON]
    return {
        "pipeline_id": pipeline_id,
        "deals": sum(deals.values()),
        "open": deals[OPEN],
        "won": won,
        "lost": deals[LOST],
        "stages": [
            {
                "stage_id": stage["stage_id"],
                "name": stage["name"],
                "probability": stage["probability"],
                "position": stage["ord"],
                "reached": reached[n],
                "conversion_to_next": _ratio(reached[n + 1] if n < last else won, reached[n]),
                "conversion_to_won": _ratio(won, reached[n]),
            }
            for n, stage in enumerate(stages)
        ],
    }


_PERIOD_COLUMNS: dict[str, str] = {"month": "closed_month", "quarter": "closed_quarter"}


def win_rate(
    con: duckdb.DuckDBPyConnection,
    *,
    period: Period = "month",
    owner_id: str | None = None,
    owners: Owners = None,
    since: str | None = None,
    until: str | None = None,
) -> list[dict[str, Any]]:
    """Win rate and average sales cycle per period of the close (UTC; ``2024-05`` or
    ``2024-Q2``) and owner, for deals closed in ``since`` ≤ closed_at < ``until``.

    Only deals won or lost now count, each once, by its final close: a reopened deal
    leaves the figures while it is open again, and when it closes again it counts with
    that outcome, in the period of that close, for the owner it had then. Its sales
    cycle runs from its opening to that final close, time spent closed in between
    included. ``avg_cycle_days`` averages over won and lost deals alike.
    """
    column = _PERIOD_COLUMNS[period]
    where, params = _where(
        [
            ("owner_id = CAST(? AS UUID)", owner_id),
            (owned_by("owner_id"), owner_values(owners)),
            ("closed_at >= CAST(? AS TIMESTAMPTZ)", since),
            ("closed_at < CAST(? AS TIMESTAMPTZ)", until),
        ]
    )
    where = (where + " AND" if where else " WHERE") + " status IN ('won', 'lost')"
    rows = rows_of(
        con,
        f"SELECT {column} AS period, CAST(owner_id AS VARCHAR) AS owner_id, "
        "CAST(count(*) FILTER (WHERE status = 'won') AS BIGINT) AS won, "
        "CAST(count(*) FILTER (WHERE status = 'lost') AS BIGINT) AS lost, "
        "avg(cycle_seconds) / 86400 AS avg_cycle_days "
        f"FROM analytics_deals{where} GROUP BY 1, 2 ORDER BY 1, 2",
        params,
    )
    for row in rows:
        row["closed"] = row["won"] + row["lost"]
        row["win_rate"] = row["won"] / row["closed"]
    return rows


def activity(
    con: duckdb.DuckDBPyConnection,
    *,
    user_id: str | None = None,
    owners: Owners = None,
    kind: str | None = None,
    since: date | None = None,
    until: date | None = None,
    after: tuple[str, str, str] | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Interactions per day (UTC, of when they happened), user who logged them and kind,
    retracted ones left out; ``since`` ≤ day < ``until``. Ordered by day, user, kind;
    ``after`` is the (day, user, kind) of the last row of the previous page."""
    where, params = _where(
        [
            ("user_id = ?", user_id),
            (owned_by("user_id", cast="VARCHAR"), owner_values(owners)),
            ("kind = ?", kind),
            ("day >= ?", since),
            ("day < ?", until),
        ]
    )
    page = ""
    if after is not None:
        day, user, last_kind = after
        page = (
            " HAVING day > CAST(? AS DATE) OR (day = CAST(? AS DATE) AND "
            "(user_id > ? OR (user_id = ? AND kind > ?)))"
        )
        params += [day, day, user, user, last_kind]
    return rows_of(
        con,
        "SELECT day, user_id, kind, CAST(count(*) AS BIGINT) AS count "
        f"FROM analytics_interactions{where} GROUP BY day, user_id, kind{page} "
        "ORDER BY day, user_id, kind LIMIT ?",
        [*params, limit],
    )


def _money(value: Decimal) -> Decimal:
    """An exact amount without trailing zeros beyond the cents."""
    value = value.normalize()
    exponent = value.as_tuple().exponent
    return value.quantize(Decimal("0.01")) if isinstance(exponent, int) and exponent > -2 else value


def forecast(
    con: duckdb.DuckDBPyConnection,
    *,
    owner_id: str | None = None,
    owners: Owners = None,
    currency: str | None = None,
    from_month: str | None = None,
    to_month: str | None = None,
) -> list[dict[str, Any]]:
    """Σ amount * probability / 100 of the open deals, by expected close month
    (``2024-05``; None for deals without an expected close date), owner and currency —
    never summed across currencies. Probabilities are the stages' current ones.
    ``from_month`` ≤ month ≤ ``to_month``, both included (a month bound leaves out the
    deals without a date). Amounts are exact decimals."""
    where, params = _where(
        [
            ("d.owner_id = CAST(? AS UUID)", owner_id),
            (owned_by("d.owner_id"), owner_values(owners)),
            ("d.currency = ?", currency),
            ("d.expected_close_month >= ?", from_month),
            ("d.expected_close_month <= ?", to_month),
        ]
    )
    where = (where + " AND" if where else " WHERE") + " d.status = 'open'"
    rows = rows_of(
        con,
        "SELECT d.expected_close_month AS month, CAST(d.owner_id AS VARCHAR) AS owner_id, "
        "d.currency, CAST(count(*) AS BIGINT) AS deals, sum(d.amount) AS amount, "
        "sum(d.amount * s.probability) AS weighted_percent "
        "FROM analytics_deals d JOIN analytics_stages s "
        "ON s.pipeline_id = d.pipeline_id AND s.stage_id = d.stage_id"
        f"{where} GROUP BY 1, 2, 3 ORDER BY 1 NULLS LAST, 2, 3",
        params,
    )
    with localcontext() as exact:
        exact.prec = 60
        for row in rows:
            row["amount"] = _money(row["amount"])
            row["weighted"] = _money(row.pop("weighted_percent") / 100)
    return rows
