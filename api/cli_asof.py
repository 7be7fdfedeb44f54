"""``crm replay board|funnel|forecast|sql``: read models as they stood at a moment.

Each command builds the read models it needs from the events recorded by then (or up
to a position) into a throw-away in-memory DuckDB (``replay/as_of.py``) and queries it
with the read model's own query functions. "As of" means *as recorded by then*, never
"what happened by then": see ``replay/as_of.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import duckdb
import typer

from api.cli_common import (
    AsUserOption,
    OutputFormat,
    err,
    fail,
    print_rows,
    progress_bar,
    reader_as,
    replay_app,
)
from api.cli_records import MOMENT_HELP, parse_moment, store
from projections import analysts, analytics
from projections import board as board_model
from projections.bulk import BulkBuildError
from projections.registry import PROJECTORS
from replay.as_of import AsOf, head, position_as_of, read_models_as_of, recorded_at

AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help=f"as recorded by then: {MOMENT_HELP}. Default: now",
    ),
]
PositionOption = Annotated[
    int | None, typer.Option("--position", help="as of this global position instead")
]
FormatOption = Annotated[OutputFormat, typer.Option("--format", help="table, csv or json")]


def parse_id(text: str, what: str) -> str:
    try:
        return str(UUID(text))
    except ValueError:
        raise fail(f"{what} {text!r} is not an id") from None


@contextmanager
def as_of(
    moment_text: str | None,
    position: int | None,
    names: Sequence[str],
    as_user: str | None = None,
) -> Iterator[tuple[AsOf, datetime]]:
    """Read models ``names`` as of the moment or position asked for, and the moment
    they stand at (when days in stage are counted); with ``as_user`` (an e-mail) only
    the rows that user may read now."""
    reader = reader_as(as_user)
    if moment_text is not None and position is not None:
        raise fail("give --as-of or --position, not both")
    if position is not None and position < 0:
        raise fail("--position must be 0 or more")
    moment = parse_moment(moment_text) if moment_text is not None else None
    with store() as crm:
        now = datetime.now(UTC)
        last = head(crm.recorder)
        if moment is not None:
            upto = position_as_of(crm.recorder, moment)
            stands_at = min(moment, now)
        else:
            upto = last if position is None else min(position, last)
            stands_at = (recorded_at(crm.recorder, upto) if position is not None else None) or now
        with progress_bar("reading events", transient=True) as progress:
            task = progress.add_task("reading events", total=upto)

            def read(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            try:
                built = read_models_as_of(crm.recorder, upto, names, progress=read)
            except BulkBuildError as error:
                raise fail(str(error)) from None
    try:
        if not reader.is_system:
            con = built.reader()
            try:
                analysts.restrict(con, reader)
            finally:
                con.close()
        yield built, stands_at
    finally:
        built.close()
    err.print(
        f"as of position {built.position} (of {last}), standing at "
        f"{stands_at.isoformat()}: {built.events:,} events in {built.seconds:.1f} s",
        highlight=False,
    )


def _names(rows: list[dict[str, Any]]) -> list[str]:
    return list(rows[0]) if rows else []


@replay_app.command("board")
def replay_board(
    pipeline: Annotated[str, typer.Option("--pipeline", help="the pipeline's id")],
    moment: AsOfOption = None,
    position: PositionOption = None,
    limit: Annotated[int, typer.Option("--limit", help="the most deals per stage")] = 100,
    output: FormatOption = OutputFormat.table,
    as_user: AsUserOption = None,
) -> None:
    """A pipeline's board as it stood: open deals by stage, days in stage counted then."""
    pipeline_id = parse_id(pipeline, "--pipeline")
    if not 1 <= limit <= 10_000:
        raise fail("--limit must be 1 to 10000")
    with as_of(moment, position, ["board"], as_user) as (built, stands_at):
        con = built.reader()
        try:
            view = board_model.board(con, pipeline_id, stands_at, per_stage=limit)
        finally:
            con.close()
        if view is None:
            raise fail(f"no pipeline {pipeline_id} as of position {built.position}")
    columns = ["stage", "deal_id", "title", "amount", "currency", "probability"]
    columns += ["weighted_amount", "days_in_stage", "stage_entered_at", "owner_id"]
    rows = [
        (stage["name"], *(deal[column] for column in columns[1:]))
        for stage in view["stages"]
        for deal in stage["items"]
    ]
    print_rows(columns, rows, output)
    totals = ", ".join(
        f"{t['currency']} {t['amount']} (weighted {t['weighted_amount']})" for t in view["totals"]
    )
    err.print(
        f"{view['name']}: {view['deals']} open deals" + (f"; {totals}" if totals else ""),
        highlight=False,
    )


@replay_app.command("funnel")
def replay_funnel(
    pipeline: Annotated[str, typer.Option("--pipeline", help="the pipeline's id")],
    moment: AsOfOption = None,
    position: PositionOption = None,
    output: FormatOption = OutputFormat.table,
    as_user: AsUserOption = None,
) -> None:
    """A pipeline's funnel as it stood: deals that had reached each stage, conversions."""
    pipeline_id = parse_id(pipeline, "--pipeline")
    with as_of(moment, position, ["analytics"], as_user) as (built, _):
        con = built.reader()
        try:
            report = analytics.funnel(con, pipeline_id)
        finally:
            con.close()
        if report is None:
            raise fail(f"no pipeline {pipeline_id} as of position {built.position}")
    stages: list[dict[str, Any]] = report["stages"]
    print_rows(_names(stages), [tuple(stage.values()) for stage in stages], output)
    err.print(
        f"{report['deals']} deals: {report['open']} open, {report['won']} won, "
        f"{report['lost']} lost",
        highlight=False,
    )


@replay_app.command("forecast")
def replay_forecast(
    moment: AsOfOption = None,
    position: PositionOption = None,
    owner: Annotated[str | None, typer.Option("--owner", help="only this owner's")] = None,
    currency: Annotated[str | None, typer.Option("--currency", help="ISO 4217")] = None,
    output: FormatOption = OutputFormat.table,
    as_user: AsUserOption = None,
) -> None:
    """The forecast as it stood: open deals by expected close month, owner and currency."""
    owner_id = parse_id(owner, "--owner") if owner is not None else None
    with as_of(moment, position, ["analytics"], as_user) as (built, _):
        con = built.reader()
        try:
            rows = analytics.forecast(
                con, owner_id=owner_id, currency=currency.upper() if currency else None
            )
        finally:
            con.close()
    columns = ["month", "owner_id", "currency", "deals", "amount", "weighted"]
    print_rows(columns, [tuple(row[c] for c in columns) for row in rows], output)


@replay_app.command("sql")
def replay_sql(
    query: Annotated[str, typer.Argument(help="a SELECT over any read model's tables")],
    moment: AsOfOption = None,
    position: PositionOption = None,
    output: FormatOption = OutputFormat.table,
    as_user: AsUserOption = None,
) -> None:
    """A read-only SQL query over every read model as it stood at a moment.

    The tables are those of `crm sql`; `projection_positions` says the position.
    """
    scratch = duckdb.connect()
    try:
        analysts.check_read_only(scratch, query)
    except analysts.AnalystError as error:
        raise fail(str(error)) from None
    finally:
        scratch.close()
    with as_of(moment, position, list(PROJECTORS), as_user) as (built, _):
        con = built.reader()
        try:
            analysts.lock_down(con)
            cursor = con.execute(query)
            names = [d[0] for d in cursor.description or []]
            rows = cursor.fetchall()
        except duckdb.Error as error:
            raise fail(analysts.one_line(error)) from None
        finally:
            con.close()
    print_rows(names, rows, output)
    err.print(f"{len(rows)} rows, as of position {built.position}", highlight=False)
