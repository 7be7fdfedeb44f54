"""The pipeline board: per pipeline and stage, the open deals with their amount,
probability, weighted amount, time in stage and last interaction, and totals per
stage and currency.

Probabilities live on the stages, not on the deals: the queries apply them, so a
re-weighted stage changes the weighted amount of every deal in it by rewriting one
row. A deal's last interaction is the latest ``occurred_at`` among the
non-retracted interactions linked to it; the projector keeps every interaction's
deal and time so that corrections and retractions can recompute it.

A removed deal leaves the board, totals included; a removed account's deals show no
account name, as if it had never been.

Won and lost deals leave ``board_deals`` for ``board_closed_deals`` (a reopened deal
comes back with everything it had), so the board scans open deals only. A deal row
carries its account's name (rewritten on the rare rename), so the board needs no join
with the accounts. ``board_totals`` keeps the open deals counted and summed per
stage, owner and currency as they change, so the board's totals add up a few rows.
Time in stage is relative to the ``now`` a query is given; the tables hold only what
the events say.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from projections import bulk_board
from projections.events import Recorded
from projections.projector import Projector, on
from projections.scope import Owners, owned_by, owner_values
from projections.tables import Column, Table

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
#: The fields of a deal the totals depend on (besides its status).
COUNTED = frozenset({"stage_id", "owner_id", "currency", "amount", "status"})
TotalKey = tuple[str, str, str]
INTERACTION_LOGGED = (
    "Interaction.CallLogged",
    "Interaction.EmailLogged",
    "Interaction.MeetingLogged",
    "Interaction.NoteLogged",
    "Interaction.SmsLogged",
)


@dataclass(slots=True)
class DealState:
    """Everything the board shows of a deal, open or closed; also its row."""

    deal_id: str
    pipeline_id: str
    stage_id: str
    title: str
    amount: str
    currency: str
    owner_id: str
    account_id: str | None
    account_name: str | None
    contacts: int
    expected_close_date: str | None
    #: When, and at which position, the deal entered its stage (or came back to the board).
    entered_at: str
    entered_position: int
    last_interaction_at: str | None
    status: str = "open"

    def row(self) -> tuple[Any, ...]:
        """The row of ``board_deals``; ``board_closed_deals`` adds the status."""
        return (
            self.deal_id,
            self.pipeline_id,
            self.stage_id,
            self.title,
            self.amount,
            self.currency,
            self.owner_id,
            self.account_id,
            self.account_name,
            self.contacts,
            self.expected_close_date,
            self.entered_at,
            self.entered_position,
            self.last_interaction_at,
        )


@dataclass(slots=True)
class StageState:
    stage_id: str
    name: str
    probability: int


def _instant(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def _iso(epoch_us: int | None) -> str | None:
    return None if epoch_us is None else (EPOCH + timedelta(microseconds=epoch_us)).isoformat()


def _stage(data: dict[str, Any]) -> StageState:
    return StageState(data["id"], data["name"], data["probability"])


def _latest(times: dict[str, str] | None) -> str | None:
    return max(times.values(), key=_instant) if times else None


class Board(Projector):
    name = "board"
    bulk_without_removed = True

    def declare_tables(self) -> list[Table]:
        deal_columns = [
            Column("deal_id", "UUID", False),
            Column("pipeline_id", "UUID", False),
            Column("stage_id", "UUID", False),
            Column("title", "VARCHAR", False),
            Column("amount", "DECIMAL(20,4)", False),
            Column("currency", "VARCHAR", False),
            Column("owner_id", "UUID", False),
            Column("account_id", "UUID"),
            Column("account_name", "VARCHAR"),
            Column("contacts", "INTEGER", False),
            Column("expected_close_date", "DATE"),
            Column("entered_at", "TIMESTAMPTZ", False),
            Column("entered_position", "BIGINT", False),
            Column("last_interaction_at", "TIMESTAMPTZ"),
        ]
        self.pipeline_table = Table(
            "board_pipelines",
            [Column("pipeline_id", "UUID", False), Column("name", "VARCHAR", False)],
            key=["pipeline_id"],
        )
        self.stage_table = Table(
            "board_stages",
            [
                Column("stage_id", "UUID", False),
                Column("pipeline_id", "UUID", False),
                Column("name", "VARCHAR", False),
                Column("probability", "INTEGER", False),
                Column("position", "INTEGER", False),
            ],
            key=["stage_id"],
        )
        self.account_table = Table(
            "board_accounts",
            [Column("account_id", "UUID", False), Column("name", "VARCHAR", False)],
            key=["account_id"],
        )
        self.open_table = Table("board_deals", deal_columns, key=["deal_id"])
        self.closed_table = Table(
            "board_closed_deals",
            [*deal_columns, Column("status", "VARCHAR", False)],
            key=["deal_id"],
        )
        # Every interaction not retracted, with or without a deal: a correction may
        # link one to a deal later, and then its time is needed.
        self.interaction_table = Table(
            "board_interactions",
            [
                Column("interaction_id", "UUID", False),
                Column("deal_id", "UUID"),
                Column("occurred_at", "TIMESTAMPTZ", False),
            ],
            key=["interaction_id"],
        )
        # The open deals counted and summed per stage, owner and currency, kept as the
        # deals change: the board's totals (for any owner or currency filter) sum a
        # few of these rows instead of aggregating every open deal.
        self.totals_table = Table(
            "board_totals",
            [
                Column("pipeline_id", "UUID", False),
                Column("stage_id", "UUID", False),
                Column("owner_id", "UUID", False),
                Column("currency", "VARCHAR", False),
                Column("deals", "BIGINT", False),
                Column("amount", "DECIMAL(38,4)", False),
            ],
            key=["stage_id", "owner_id", "currency"],
        )
        return [
            self.pipeline_table,
            self.stage_table,
            self.account_table,
            self.open_table,
            self.closed_table,
            self.interaction_table,
            self.totals_table,
        ]

    def build_in_bulk(self, con: duckdb.DuckDBPyConnection) -> bool:
        bulk_board.build(con)
        return True

    def load(self, con: duckdb.DuckDBPyConnection) -> None:
        #: Each pipeline's stages in board order.
        self.stages: dict[str, list[StageState]] = {}
        for stage_id, pipeline_id, name, probability in con.execute(
            "SELECT CAST(stage_id AS VARCHAR), CAST(pipeline_id AS VARCHAR), name, probability "
            "FROM board_stages ORDER BY pipeline_id, position"
        ).fetchall():
            self.stages.setdefault(pipeline_id, []).append(StageState(stage_id, name, probability))
        self.accounts: dict[str, str] = dict(
            con.execute("SELECT CAST(account_id AS VARCHAR), name FROM board_accounts").fetchall()
        )
        self.deals: dict[str, DealState] = {}
        #: The deals of each account, which carry its name (a deal never changes account).
        self.account_deals: dict[str, list[DealState]] = {}
        columns = (
            "CAST(deal_id AS VARCHAR), CAST(pipeline_id AS VARCHAR), CAST(stage_id AS VARCHAR), "
            "title, CAST(amount AS VARCHAR), currency, CAST(owner_id AS VARCHAR), "
            "CAST(account_id AS VARCHAR), account_name, contacts, "
            "CAST(expected_close_date AS VARCHAR), "
            "epoch_us(entered_at), entered_position, epoch_us(last_interaction_at)"
        )
        for table, status in (("board_deals", "'open'"), ("board_closed_deals", "status")):
            for row in con.execute(f"SELECT {columns}, {status} FROM {table}").fetchall():
                deal = DealState(
                    deal_id=row[0],
                    pipeline_id=row[1],
                    stage_id=row[2],
                    title=row[3],
                    amount=row[4],
                    currency=row[5],
                    owner_id=row[6],
                    account_id=row[7],
                    account_name=row[8],
                    contacts=row[9],
                    expected_close_date=row[10],
                    entered_at=_iso(row[11]) or "",
                    entered_position=row[12],
                    last_interaction_at=_iso(row[13]),
                    status=row[14],
                )
                self._remember_deal(deal)
        self.totals: dict[TotalKey, tuple[str, int, Decimal]] = {
            (stage_id, owner_id, currency): (pipeline_id, deals, Decimal(amount))
            for pipeline_id, stage_id, owner_id, currency, deals, amount in con.execute(
                "SELECT CAST(pipeline_id AS VARCHAR), CAST(stage_id AS VARCHAR), "
                "CAST(owner_id AS VARCHAR), currency, deals, CAST(amount AS VARCHAR) "
                "FROM board_totals"
            ).fetchall()
        }
        #: interaction id -> (deal id or None, occurred_at); and per deal, its interactions.
        self.interactions: dict[str, tuple[str | None, str]] = {}
        self.deal_interactions: dict[str, dict[str, str]] = {}
        for interaction_id, deal_id, occurred_us in con.execute(
            "SELECT CAST(interaction_id AS VARCHAR), CAST(deal_id AS VARCHAR), "
            "epoch_us(occurred_at) FROM board_interactions"
        ).fetchall():
            self._remember_interaction(interaction_id, deal_id, _iso(occurred_us) or "")

    # Pipelines and accounts

    @on("Pipeline.Created")
    def pipeline_created(self, event: Recorded) -> None:
        self._rename_pipeline(event)
        self.stages[event.aggregate_id] = [_stage(stage) for stage in event.data["stages"]]
        self._write_stages(event.aggregate_id)

    @on("Pipeline.Renamed")
    def pipeline_renamed(self, event: Recorded) -> None:
        self._rename_pipeline(event)

    @on("Pipeline.StageAdded")
    def stage_added(self, event: Recorded) -> None:
        stages = self.stages.setdefault(event.aggregate_id, [])
        stages.insert(event.data["position"], _stage(event.data["stage"]))
        self._write_stages(event.aggregate_id)

    @on("Pipeline.StageRenamed")
    def stage_renamed(self, event: Recorded) -> None:
        stage = self._stage(event)
        if stage is not None:
            stage.name = event.data["name"]
            self._write_stages(event.aggregate_id)

    @on("Pipeline.StageReweighted")
    def stage_reweighted(self, event: Recorded) -> None:
        # One row: the deals take their probability from their stage in the queries.
        stage = self._stage(event)
        if stage is not None:
            stage.probability = event.data["probability"]
            self._write_stages(event.aggregate_id)

    @on("Pipeline.StagesReordered")
    def stages_reordered(self, event: Recorded) -> None:
        by_id = {stage.stage_id: stage for stage in self.stages.get(event.aggregate_id, [])}
        self.stages[event.aggregate_id] = [
            by_id[stage_id] for stage_id in event.data["order"] if stage_id in by_id
        ]
        self._write_stages(event.aggregate_id)

    def _rename_pipeline(self, event: Recorded) -> None:
        pipeline_id = event.aggregate_id
        self.pipeline_table.upsert(pipeline_id, (pipeline_id, event.data["name"]))

    def _stage(self, event: Recorded) -> StageState | None:
        stage_id = event.data["stage_id"]
        for stage in self.stages.get(event.aggregate_id, []):
            if stage.stage_id == stage_id:
                return stage
        return None

    def _write_stages(self, pipeline_id: str) -> None:
        # A pipeline has at most 50 stages: rewriting all of them is cheap.
        for position, stage in enumerate(self.stages[pipeline_id]):
            row = (stage.stage_id, pipeline_id, stage.name, stage.probability, position)
            self.stage_table.upsert(stage.stage_id, row)

    @on("Account.Registered", "Account.DetailsChanged")
    def account_named(self, event: Recorded) -> None:
        account_id, name = event.aggregate_id, event.data["name"]
        if self.accounts.get(account_id) == name:
            return
        self.accounts[account_id] = name
        self.account_table.upsert(account_id, (account_id, name))
        # Renames are rare; the board reads the name off the deal without a join.
        for deal in self.account_deals.get(account_id, ()):
            deal.account_name = name
            self._write_deal(deal)

    @on("Account.Removed")
    def account_removed(self, event: Recorded) -> None:
        # As if it had never been: its deals show no account name.
        account_id = event.aggregate_id
        if self.accounts.pop(account_id, None) is not None:
            self.account_table.delete(account_id)
        for deal in self.account_deals.get(account_id, ()):
            if deal.account_name is not None:
                deal.account_name = None
                self._write_deal(deal)

    # Deals

    @on("Deal.Removed")
    def deal_removed(self, event: Recorded) -> None:
        deal = self.deals.pop(event.aggregate_id, None)
        if deal is None:
            return
        if deal.status == "open":
            self._count(deal, -1)
            self.open_table.delete(deal.deal_id)
        else:
            self.closed_table.delete(deal.deal_id)
        if deal.account_id is not None:
            self.account_deals[deal.account_id].remove(deal)

    @on("Deal.Opened")
    def deal_opened(self, event: Recorded) -> None:
        data = event.data
        deal = DealState(
            deal_id=event.aggregate_id,
            pipeline_id=data["pipeline_id"],
            stage_id=data["stage_id"],
            title=data["title"],
            amount=data["amount"],
            currency=data["currency"],
            owner_id=data["owner_id"],
            account_id=data["account_id"],
            account_name=self.accounts.get(data["account_id"]) if data["account_id"] else None,
            contacts=len(data["contact_ids"]),
            expected_close_date=data["expected_close_date"],
            entered_at=event.recorded_at,
            entered_position=event.position,
            last_interaction_at=_latest(self.deal_interactions.get(event.aggregate_id)),
        )
        self._remember_deal(deal)
        self._write_deal(deal)
        self._count(deal, 1)

    def _remember_deal(self, deal: DealState) -> None:
        self.deals[deal.deal_id] = deal
        if deal.account_id is not None:
            self.account_deals.setdefault(deal.account_id, []).append(deal)

    @on("Deal.StageChanged")
    def deal_moved(self, event: Recorded) -> None:
        self._update(event, stage_id=event.data["stage_id"], **self._entered(event))

    @on("Deal.Retitled")
    def deal_retitled(self, event: Recorded) -> None:
        self._update(event, title=event.data["title"])

    @on("Deal.AmountChanged")
    def deal_amount_changed(self, event: Recorded) -> None:
        self._update(event, amount=event.data["amount"], currency=event.data["currency"])

    @on("Deal.OwnerChanged")
    def deal_reassigned(self, event: Recorded) -> None:
        self._update(event, owner_id=event.data["owner_id"])

    @on("Deal.CloseDateChanged")
    def deal_close_date_changed(self, event: Recorded) -> None:
        self._update(event, expected_close_date=event.data["expected_close_date"])

    @on("Deal.ContactsChanged")
    def deal_contacts_changed(self, event: Recorded) -> None:
        self._update(event, contacts=len(event.data["contact_ids"]))

    @on("Deal.Won")
    def deal_won(self, event: Recorded) -> None:
        self._update(event, status="won")

    @on("Deal.Lost")
    def deal_lost(self, event: Recorded) -> None:
        self._update(event, status="lost")

    @on("Deal.Reopened")
    def deal_reopened(self, event: Recorded) -> None:
        # Back on the board: its time in stage counts from the reopening.
        self._update(event, status="open", stage_id=event.data["stage_id"], **self._entered(event))

    @staticmethod
    def _entered(event: Recorded) -> dict[str, Any]:
        return {"entered_at": event.recorded_at, "entered_position": event.position}

    def _update(self, event: Recorded, **changes: Any) -> None:
        deal = self.deals.get(event.aggregate_id)
        if deal is None:  # a deal this read model never saw opened
            return
        was_open = deal.status == "open"
        recount = was_open and not changes.keys().isdisjoint(COUNTED)
        if recount:
            self._count(deal, -1)
        for field, value in changes.items():
            setattr(deal, field, value)
        if was_open and deal.status != "open":
            self.open_table.delete(deal.deal_id)
        elif not was_open and deal.status == "open":
            self.closed_table.delete(deal.deal_id)
            recount = True
        if recount and deal.status == "open":
            self._count(deal, 1)
        self._write_deal(deal)

    def _count(self, deal: DealState, sign: int) -> None:
        """Add an open deal to the totals (``sign`` 1) or take it away (-1)."""
        key = (deal.stage_id, deal.owner_id, deal.currency)
        _, deals, amount = self.totals.get(key, (deal.pipeline_id, 0, Decimal(0)))
        deals += sign
        amount += sign * Decimal(deal.amount)
        if deals:
            self.totals[key] = (deal.pipeline_id, deals, amount)
            self.totals_table.upsert(key, (deal.pipeline_id, *key, deals, str(amount)))
        else:
            del self.totals[key]
            self.totals_table.delete(key)

    def _write_deal(self, deal: DealState) -> None:
        if deal.status == "open":
            self.open_table.upsert(deal.deal_id, deal.row())
        else:
            self.closed_table.upsert(deal.deal_id, (*deal.row(), deal.status))

    # Interactions: each deal's last one

    @on(*INTERACTION_LOGGED)
    def interaction_logged(self, event: Recorded) -> None:
        self._set_interaction(event.aggregate_id, event.data["deal_id"], event.data["occurred_at"])

    @on("Interaction.Corrected")
    def interaction_corrected(self, event: Recorded) -> None:
        changes = event.data["changes"]
        if "deal_id" not in changes and "occurred_at" not in changes:
            return
        known = self.interactions.get(event.aggregate_id)
        if known is None:
            return
        deal_id = changes["deal_id"] if "deal_id" in changes else known[0]
        occurred_at = changes["occurred_at"] if "occurred_at" in changes else known[1]
        self._set_interaction(event.aggregate_id, deal_id, occurred_at)

    @on("Interaction.Retracted")
    def interaction_retracted(self, event: Recorded) -> None:
        known = self.interactions.pop(event.aggregate_id, None)
        if known is None:
            return
        self.interaction_table.delete(event.aggregate_id)
        deal_id = known[0]
        if deal_id is not None:
            self.deal_interactions[deal_id].pop(event.aggregate_id)
            self._refresh_last_interaction(deal_id)

    def _set_interaction(self, interaction_id: str, deal_id: str | None, occurred_at: str) -> None:
        previous = self.interactions.get(interaction_id)
        previous_deal = previous[0] if previous is not None else None
        if previous_deal is not None:
            self.deal_interactions[previous_deal].pop(interaction_id)
        self._remember_interaction(interaction_id, deal_id, occurred_at)
        self.interaction_table.upsert(interaction_id, (interaction_id, deal_id, occurred_at))
        if previous_deal is not None:
            # A correction may have moved or taken away the latest: look at all of them.
            self._refresh_last_interaction(previous_deal)
        if deal_id is None or deal_id == previous_deal:
            return
        deal = self.deals.get(deal_id)
        if deal is not None and (
            deal.last_interaction_at is None
            or _instant(occurred_at) > _instant(deal.last_interaction_at)
        ):
            deal.last_interaction_at = occurred_at
            self._write_deal(deal)

    def _remember_interaction(
        self, interaction_id: str, deal_id: str | None, occurred_at: str
    ) -> None:
        self.interactions[interaction_id] = (deal_id, occurred_at)
        if deal_id is not None:
            self.deal_interactions.setdefault(deal_id, {})[interaction_id] = occurred_at

    def _refresh_last_interaction(self, deal_id: str) -> None:
        deal = self.deals.get(deal_id)
        if deal is None:
            return
        latest = _latest(self.deal_interactions.get(deal_id))
        if latest != deal.last_interaction_at:
            deal.last_interaction_at = latest
            self._write_deal(deal)


# Queries

#: Deal columns as the queries return them: ids as strings, times as epoch microseconds
#: (turned into datetimes in Python, many times faster than DuckDB's own conversion).
#: The probability and weighted amount come from the stage, in :func:`_deal`.
DEAL_SELECT = """
    CAST(d.deal_id AS VARCHAR) AS deal_id, CAST(d.stage_id AS VARCHAR) AS stage_id, d.title,
    d.amount, d.currency, CAST(d.owner_id AS VARCHAR) AS owner_id,
    CAST(d.account_id AS VARCHAR) AS account_id, d.account_name, d.contacts, d.expected_close_date,
    epoch_us(d.entered_at) AS entered_us, d.entered_position,
    epoch_us(d.last_interaction_at) AS last_interaction_us"""

DEAL_FIELDS = (
    "deal_id",
    "stage_id",
    "title",
    "amount",
    "currency",
    "owner_id",
    "account_id",
    "account_name",
    "contacts",
    "expected_close_date",
    "entered_position",
)


def _rows(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params or {})
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _filters(
    owner: str | None, currency: str | None, owners: Owners = None
) -> tuple[str, dict[str, Any]]:
    clauses = ""
    params: dict[str, Any] = {}
    if owner is not None:
        clauses += " AND owner_id = CAST($owner AS UUID)"
        params["owner"] = owner
    if (values := owner_values(owners)) is not None:
        clauses += " AND " + owned_by("owner_id", "$owners")
        params["owners"] = values
    if currency is not None:
        clauses += " AND currency = $currency"
        params["currency"] = currency
    return clauses, params


def _weighted(amount: Decimal, probability: int) -> Decimal:
    """``amount * probability / 100``, exactly (as DuckDB's ``amount * probability * 0.01``)."""
    return (amount * probability).scaleb(-2)


def _deal(row: dict[str, Any], probability: int, now: datetime) -> dict[str, Any]:
    entered_at = EPOCH + timedelta(microseconds=row["entered_us"])
    last = row["last_interaction_us"]
    return {
        **{field: row[field] for field in DEAL_FIELDS},
        "probability": probability,
        "weighted_amount": _weighted(row["amount"], probability),
        "stage_entered_at": entered_at,
        "days_in_stage": max(0, (now - entered_at) // DAY),
        "last_interaction_at": None if last is None else EPOCH + timedelta(microseconds=last),
    }


def board(
    con: duckdb.DuckDBPyConnection,
    pipeline_id: str,
    now: datetime,
    *,
    owner: str | None = None,
    owners: Owners = None,
    currency: str | None = None,
    per_stage: int = 25,
) -> dict[str, Any] | None:
    """The board of one pipeline, ``None`` if there is no such pipeline.

    Stages come in pipeline order, each with its totals per currency (deals, amount,
    weighted amount; currencies are never added together) over all its open deals
    that pass the filters, and the first ``per_stage`` of those deals in the order
    they entered the stage (longest there first). ``next_after`` is set on a stage
    with more deals than shown: the ``after`` of :func:`stage_deals` for the rest
    (``per_stage=0`` asks for totals only; the rest is then the whole stage).

    Two statements in one read transaction (one snapshot): the first sums the kept
    totals and, in one scan of the open deals, picks each stage's first deals; the
    second fetches just those deals. (One statement doing both runs slower than the
    two together.) ``con`` must not be inside a transaction already.
    """
    filters, params = _filters(owner, currency, owners)
    stages_sql = f"""
        SELECT s.position, CAST(s.stage_id AS VARCHAR) AS stage_id, s.name, s.probability,
               p.name AS pipeline_name, t.currency, t.deals, t.amount,
               t.amount * s.probability * 0.01 AS weighted_amount, f.firsts
        FROM board_pipelines p
        JOIN board_stages s USING (pipeline_id)
        LEFT JOIN (
            SELECT stage_id, currency, sum(deals) AS deals, sum(amount) AS amount
            FROM board_totals
            WHERE pipeline_id = CAST($pipeline AS UUID){filters}
            GROUP BY stage_id, currency
        ) t USING (stage_id)
        LEFT JOIN (
            SELECT stage_id, min_by(entered_position, entered_position, $pick) AS firsts
            FROM board_deals
            WHERE pipeline_id = CAST($pipeline AS UUID){filters}
            GROUP BY stage_id
        ) f USING (stage_id)
        WHERE p.pipeline_id = CAST($pipeline AS UUID)
        ORDER BY s.position, t.currency
    """
    deals_sql = f"""
        SELECT {DEAL_SELECT}
        FROM board_deals d
        WHERE d.entered_position IN (SELECT unnest($positions))
        ORDER BY d.entered_position
    """
    with _snapshot(con):
        # min_by wants at least one; ``per_stage`` 0 (totals only) drops them below.
        rows = _rows(
            con, stages_sql, {**params, "pipeline": pipeline_id, "pick": max(per_stage, 1)}
        )
        if not rows:
            return None
        stages: dict[str, dict[str, Any]] = {}
        positions: list[int] = []
        for row in rows:
            stage = stages.get(row["stage_id"])
            if stage is None:
                positions += (row["firsts"] or [])[:per_stage]
                stage = stages[row["stage_id"]] = {
                    "stage_id": row["stage_id"],
                    "name": row["name"],
                    "position": row["position"],
                    "probability": row["probability"],
                    "deals": 0,
                    "totals": [],
                    "items": [],
                    "next_after": None,
                }
            if row["currency"] is not None:
                stage["deals"] += row["deals"]
                stage["totals"].append(_total(row))
        deals = _rows(con, deals_sql, {"positions": positions}) if positions else []
    for deal in deals:
        stage = stages[deal["stage_id"]]
        stage["items"].append(_deal(deal, stage["probability"], now))
    totals: dict[str, dict[str, Any]] = {}
    for stage in stages.values():
        if stage["items"] and stage["deals"] > len(stage["items"]):
            stage["next_after"] = stage["items"][-1]["entered_position"]
        for total in stage["totals"]:
            summed = totals.setdefault(
                total["currency"],
                {
                    "currency": total["currency"],
                    "deals": 0,
                    "amount": Decimal(0),
                    "weighted_amount": Decimal(0),
                },
            )
            for field in ("deals", "amount", "weighted_amount"):
                summed[field] += total[field]
    return {
        "pipeline_id": pipeline_id,
        "name": rows[0]["pipeline_name"],
        "as_of": now,
        "deals": sum(stage["deals"] for stage in stages.values()),
        "totals": sorted(totals.values(), key=lambda total: str(total["currency"])),
        "stages": list(stages.values()),
    }


@contextmanager
def _snapshot(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Several statements reading one committed state of the read model."""
    con.begin()
    try:
        yield
    finally:
        con.rollback()


def _total(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "currency": row["currency"],
        "deals": row["deals"],
        "amount": row["amount"],
        "weighted_amount": row["weighted_amount"],
    }


def stage_deals(
    con: duckdb.DuckDBPyConnection,
    pipeline_id: str,
    stage_id: str,
    now: datetime,
    *,
    owner: str | None = None,
    owners: Owners = None,
    currency: str | None = None,
    after: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]] | None:
    """The open deals of one stage in the order they entered it, after the deal that
    entered at position ``after`` (the cursor); ``None`` if the pipeline has no such
    stage. (The stage is the left side of the join: a known stage gives at least one
    row, with no deal when none passes.)"""
    filters, params = _filters(owner, currency, owners)
    sql = f"""
        SELECT s.probability AS stage_probability, {DEAL_SELECT}
        FROM board_stages s
        LEFT JOIN (
            SELECT * FROM board_deals
            WHERE stage_id = CAST($stage AS UUID) AND entered_position > $after{filters}
        ) d USING (stage_id)
        WHERE s.stage_id = CAST($stage AS UUID) AND s.pipeline_id = CAST($pipeline AS UUID)
        ORDER BY d.entered_position
        LIMIT $limit
    """
    rows = _rows(
        con,
        sql,
        {
            **params,
            "pipeline": pipeline_id,
            "stage": stage_id,
            "after": -1 if after is None else after,
            "limit": limit,
        },
    )
    if not rows:
        return None
    return [_deal(row, row["stage_probability"], now) for row in rows if row["deal_id"] is not None]


def pipelines(con: duckdb.DuckDBPyConnection, owners: Owners = None) -> list[dict[str, Any]]:
    """Every pipeline with its stages in order and its number of open deals (of
    ``owners``), by name."""
    filters, params = _filters(None, None, owners)
    return _rows(
        con,
        f"""
        SELECT CAST(p.pipeline_id AS VARCHAR) AS pipeline_id, p.name,
               coalesce(n.deals, 0) AS deals,
               (SELECT list({{'stage_id': CAST(s.stage_id AS VARCHAR), 'name': s.name,
                             'probability': s.probability, 'position': s.position}}
                            ORDER BY s.position)
                FROM board_stages s WHERE s.pipeline_id = p.pipeline_id) AS stages
        FROM board_pipelines p
        LEFT JOIN (
            SELECT pipeline_id, sum(deals) AS deals FROM board_totals WHERE TRUE{filters}
            GROUP BY ALL
        ) n USING (pipeline_id)
        ORDER BY p.name, p.pipeline_id
        """,
        params,
    )
