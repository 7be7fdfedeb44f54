"""The ``crm`` command line: store, server, projections and analysts' commands here;
auditors' commands (``crm replay``, ``crm history``, ``crm verify``…) in the
``api/cli_*.py`` modules imported at the end, which register on the same app."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import duckdb
import typer
from rich.progress import TaskID

from api.cli_common import (
    AsUserOption,
    OutputFormat,
    app,
    err,
    fail,
    out,
    print_rows,
    progress_bar,
    reader_as,
    system_context,
    user_by_email,
)
from api.cli_kafka import project_from_kafka
from api.settings import Settings
from api.wiring import build_crm, build_read_models
from commands.errors import CommandError
from commands.handlers import execute
from commands.users import InviteUser, IssueToken
from domain.errors import DomainError
from domain.roles import Role
from domain.user import OwnerRoster, roster_id
from domain.values import normalize_email
from projections import analysts
from projections.bulk import BulkBuildError, stage
from projections.files import ReadFiles
from projections.host import ReadModelsLockedError
from projections.projector import ProjectionError
from projections.registry import PROJECTORS
from projections.runner import Runner
from replay.rebuild import any_bulk
from replay.rebuild import rebuild as rebuild_read_model


@app.command()
def init(
    email: Annotated[str, typer.Option(help="e-mail of the first Owner")] = "owner@example.com",
    name: Annotated[str, typer.Option(help="name of the first Owner")] = "Owner",
    exist_ok: Annotated[
        bool,
        typer.Option(
            "--exist-ok", help="if the store already has an Owner, say so and succeed (deploys)"
        ),
    ] = False,
) -> None:
    """Create the event store and the first Owner; print the Owner's API token once."""
    settings = Settings()
    try:
        crm = build_crm(settings)
    except Exception as error:
        raise fail(f"cannot open the event store ({settings.store_description}): {error}") from None
    try:
        roster = crm.find(OwnerRoster, roster_id())
        if roster is not None and roster.owners:
            if exist_ok:
                out.print(f"Already initialised ({settings.store_description}); nothing to do")
                return
            raise fail(
                f"already initialised ({settings.store_description}); "
                "use `crm token EMAIL` to issue a token for an existing user"
            )
        command = InviteUser(email=email, name=name, role=Role.OWNER)
        receipt = execute(crm, command, system_context())
    except (DomainError, CommandError, ValueError) as error:
        raise fail(str(error)) from None
    finally:
        crm.close()
    out.print(f"Initialised {settings.store_description}")
    out.print(f"Owner {normalize_email(email)} has id {receipt.id}")
    out.print("API token (shown once, store it now):")
    print(receipt.shown_once["token"])


@app.command()
def token(
    email: Annotated[str, typer.Argument(help="e-mail of an existing user")],
    label: Annotated[str, typer.Option(help="what the token is for")] = "cli",
    expires_in_days: Annotated[
        int | None,
        typer.Option(min=1, max=3650, help="refused after this many days (default: never)"),
    ] = None,
) -> None:
    """Issue a new API token for a user (operator recovery); printed once."""
    crm = build_crm(Settings())
    try:
        user = user_by_email(crm, email)
        expires_at = (
            datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
        )
        issue = IssueToken(user_id=user.id, label=label, expires_at=expires_at)
        receipt = execute(crm, issue, system_context())
    except (DomainError, CommandError, ValueError) as error:
        raise fail(str(error)) from None
    finally:
        crm.close()
    print(receipt.shown_once["token"])


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default CRM_HOST or 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="default CRM_PORT or 8000")] = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from api.app import create_app

    settings = Settings()
    out.print(f"Chronicle CRM on {settings.store_description}")
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
    )


def check_names(names: list[str] | None) -> list[str]:
    chosen = names or list(PROJECTORS)
    unknown = [n for n in chosen if n not in PROJECTORS]
    if unknown:
        raise fail(f"no read model {', '.join(unknown)}; there are: {', '.join(PROJECTORS)}")
    return chosen


class Source(StrEnum):
    store = "store"
    kafka = "kafka"


@app.command()
def project(
    once: Annotated[
        bool, typer.Option("--once", help="catch up with the store (or the topic), then exit")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="log every batch applied and committed")
    ] = False,
    source: Annotated[
        Source,
        typer.Option(help="where the events come from: the store, or the topic CRM_KAFKA_TOPIC"),
    ] = Source.store,
    group: Annotated[
        str, typer.Option(help="with --source kafka: the consumer group sharing the partitions")
    ] = "crm-projections",
) -> None:
    """Run the projections on their own (not inside `crm serve`): catch up, then follow."""
    settings = Settings()
    if source is Source.kafka:
        project_from_kafka(settings, group, once, verbose)
        return
    if verbose:
        logging.basicConfig(format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
        logging.getLogger("crm.projections").setLevel(logging.DEBUG)
    crm = build_crm(settings)
    try:
        try:
            reads = build_read_models(crm, settings)
        except ReadModelsLockedError as error:
            raise fail(str(error)) from None
        try:
            head = crm.position()
            with progress_bar("catching up") as progress:
                task = progress.add_task("catching up", total=head, completed=reads.runner.position)

                def advance(done: int, _: int) -> None:
                    progress.update(task, completed=done)
                    reads.maintain()  # answer `crm sql` snapshots and swaps meanwhile

                reads.runner.catch_up(stop=head, progress=advance)
            out.print(f"read models at position {reads.runner.position}")
            if not once:
                follow(reads.runner)
        except ProjectionError as error:
            raise fail(str(error)) from None
        finally:
            reads.close()
    finally:
        crm.close()


def follow(runner: Runner) -> None:
    """Follow new events until SIGINT or SIGTERM; fail loudly if a projector fails."""
    stopped = threading.Event()

    def stop(*_: object) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    out.print(f"following new events (every {runner.poll_interval} s); Ctrl-C stops")
    runner.start()
    while not stopped.wait(0.5):
        if runner.status.error is not None:
            raise fail(runner.status.error)
    runner.stop()


@app.command()
def rebuild(
    names: Annotated[
        list[str] | None, typer.Argument(help="read models to rebuild (default: all)")
    ] = None,
) -> None:
    """Rebuild read models from position 0 into new files, then swap them in atomically.

    The read models in use keep answering until the swap (also inside a running
    `crm serve`, which switches between two batches); a failed rebuild changes nothing.
    """
    chosen = check_names(names)
    settings = Settings()
    crm = build_crm(settings)
    files = ReadFiles(settings.read_dir)
    try:
        head = crm.position()
        staged = None
        if any_bulk({name: PROJECTORS[name] for name in chosen}):
            with progress_bar("reading events") as progress:
                task = progress.add_task("reading events", total=head)

                def read(done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

                staged = stage(crm.recorder, progress=read)
            out.print(
                f"read {len(staged):,} events up to position {staged.position} in "
                f"{staged.read_seconds + staged.prepare_seconds:.1f} s"
            )
        for name in chosen:
            with progress_bar(name) as progress:
                task = progress.add_task(name, total=head)

                def advance(done: int, total: int, task: TaskID = task) -> None:
                    progress.update(task, completed=done, total=total)

                try:
                    result = rebuild_read_model(
                        crm.recorder,
                        files,
                        name,
                        PROJECTORS[name],
                        batch_size=settings.projection_batch_size,
                        progress=advance,
                        staged=staged,
                    )
                except (ProjectionError, BulkBuildError) as error:
                    raise fail(f"rebuild of {name} failed, nothing changed: {error}") from None
            out.print(
                f"{name}: {result.events:,} events in {result.seconds:.1f} s "
                f"({result.events_per_second:,.0f} events/s), position {result.position}, "
                f"swapped in {result.path.name}"
            )
    finally:
        crm.close()


@app.command()
def sql(
    query: Annotated[
        str, typer.Argument(help='e.g. "SELECT action, count(*) FROM audit_log GROUP BY 1"')
    ],
    output: Annotated[OutputFormat, typer.Option("--format", help="table, csv or json")] = (
        OutputFormat.table
    ),
    as_user: AsUserOption = None,
) -> None:
    """Run a read-only SQL query over the read models (also while `crm serve` runs).

    Every read model's tables are there under their own names, and
    `projection_positions` says up to which event each one is. With `--as EMAIL` the
    tables hold only the rows that user may read.
    """
    settings = Settings()
    reader = reader_as(as_user)
    try:
        with analysts.read_models(settings.read_dir, list(PROJECTORS), reader=reader) as (
            con,
            source,
        ):
            analysts.lock_down(con)
            analysts.check_read_only(con, query)
            try:
                cursor = con.execute(query)
                names = [d[0] for d in cursor.description or []]
                rows = cursor.fetchall()
            except duckdb.Error as error:
                raise analysts.AnalystError(analysts.one_line(error)) from None
    except analysts.AnalystError as error:
        raise fail(str(error)) from None
    print_rows(names, rows, output)
    err.print(f"{len(rows)} rows, from {source}", highlight=False)


class ExportFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"


@app.command("export")
def export_read_model(
    name: Annotated[str, typer.Argument(help="the read model: " + ", ".join(PROJECTORS))],
    file_format: Annotated[ExportFormat, typer.Option("--format")] = ExportFormat.csv,
    output: Annotated[Path, typer.Option("--output", help="directory")] = Path("export"),
    as_user: AsUserOption = None,
) -> None:
    """Export every table of a read model as CSV or Parquet files (one per table).

    With `--as EMAIL` only the rows that user may read.
    """
    check_names([name])
    settings = Settings()
    reader = reader_as(as_user)
    try:
        with analysts.read_models(settings.read_dir, [name], reader=reader) as (con, source):
            written = analysts.export(con, name, output, file_format.value)
    except analysts.AnalystError as error:
        raise fail(str(error)) from None
    for table, path, rows in written:
        out.print(f"{table}: {rows:,} rows -> {path}")
    err.print(f"from {source}", highlight=False)


def main() -> None:
    app()


# The modules below register their commands on ``app`` when imported.
from api import (  # noqa: E402, F401
    cli_gdpr,
    cli_import,
    cli_permissions,
    cli_relay,
    cli_replay,
    cli_revert,
)
