"""``crm import FILE``: accounts, contacts, deals and interactions from CSV or JSON Lines
(``commands/importing.py``)."""

from __future__ import annotations

import csv
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import orjson
import typer

from api.cli_common import app, err, fail, out, progress_bar, system_context
from api.settings import Settings
from api.wiring import build_crm
from commands.errors import CommandError
from commands.import_files import (
    FileFormat,
    ImportFileError,
    check_file,
    file_batch_id,
    format_of,
    read_rows,
)
from commands.import_rows import KINDS
from commands.importing import Importer, ImportReport
from domain.errors import DomainError

ImportKind = StrEnum("ImportKind", {kind: kind for kind in KINDS})  # type: ignore[misc]


def cannot_read(message: str) -> typer.Exit:
    """The file cannot be imported at all: one line, exit status 2."""
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code=2)


def write_errors(report: ImportReport, path: Path) -> None:
    """The refused rows as CSV (line, reason), or as JSON for a ``.json`` file."""
    rows = [{"line": e.line, "reason": e.reason} for e in report.refused]
    try:
        if path.suffix.lower() == ".json":
            path.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
        else:
            with path.open("w", newline="", encoding="utf-8") as file:
                writer = csv.DictWriter(file, ["line", "reason"])
                writer.writeheader()
                writer.writerows(rows)
    except OSError as error:
        raise fail(f"cannot write {path}: {error.strerror or error}") from None


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="a .csv or .jsonl file of rows")],
    file_format: Annotated[
        FileFormat | None, typer.Option("--format", help="default: from the file's suffix")
    ] = None,
    kind: Annotated[
        ImportKind | None,
        typer.Option("--kind", help="every row is of this kind (no `kind` column needed)"),
    ] = None,
    owner: Annotated[
        str | None,
        typer.Option("--owner", help="owner (user e-mail or id) of rows that name none"),
    ] = None,
    errors: Annotated[
        Path | None,
        typer.Option("--errors", help="write the refused rows here (.csv, or .json)"),
    ] = None,
) -> None:
    """Import accounts, contacts, deals and interactions. Each bad row is reported
    (line: reason) and writes nothing; the good ones are written in large batches,
    tagged with the import batch. Running the same file again writes nothing new.
    Exit status 1 if any row was refused, 2 if the file cannot be read."""
    kind_name = kind.value if kind is not None else None
    try:
        chosen = format_of(file, file_format)
        batch_id, lines = file_batch_id(file, chosen, kind_name)
        check_file(file, chosen)
    except ImportFileError as error:
        raise cannot_read(str(error)) from None
    settings = Settings()
    try:
        crm = build_crm(settings)
    except Exception as error:
        raise fail(f"cannot open the event store ({settings.store_description}): {error}") from None
    try:
        with progress_bar(f"importing {file.name}", unit="rows") as progress:
            task = progress.add_task(f"importing {file.name}", total=max(lines, 1))
            importer = Importer(
                crm,
                system_context(),
                batch_id,
                kind=kind_name,
                default_owner=owner,
                progress=lambda rows: progress.advance(task, rows),
            )
            report = importer.run(read_rows(file, chosen))
            progress.update(task, completed=max(lines, 1))
    except ImportFileError as error:
        raise cannot_read(str(error)) from None
    except (DomainError, CommandError) as error:
        raise fail(str(error)) from None
    finally:
        crm.close()
    for refused in report.refused:
        err.print(f"line {refused.line}: {refused.reason}", highlight=False, markup=False)
    if errors is not None:
        write_errors(report, errors)
    out.print(f"batch {report.batch_id}", highlight=False)
    out.print(
        f"{report.written:,} rows written ({report.events:,} events), "
        f"{report.skipped:,} skipped as already imported, {len(report.refused):,} refused",
        highlight=False,
    )
    if report.refused:
        raise typer.Exit(code=1)
