"""``crm revert-import BATCH``: take back every record an import batch created
(``commands/revert.py``)."""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli_common import app, fail, out, progress_bar, system_context
from api.settings import Settings
from api.wiring import build_crm
from commands.errors import CommandError
from commands.revert import revert_import
from domain.errors import DomainError


@app.command("revert-import")
def revert_import_command(
    batch: Annotated[str, typer.Argument(help="the batch id crm import printed")],
) -> None:
    """Remove every account, contact and deal an import batch created, and retract its
    interactions, by compensating events (history keeps everything). Records the batch
    only changed are listed, not touched. Running it again writes nothing."""
    settings = Settings()
    try:
        crm = build_crm(settings)
    except Exception as error:
        raise fail(f"cannot open the event store ({settings.store_description}): {error}") from None
    try:
        with progress_bar("reverting") as progress:
            scan = progress.add_task("looking for the batch", total=crm.position())
            undo = progress.add_task("taking records back", total=0)

            def scanned(done: int, total: int) -> None:
                progress.update(scan, completed=done, total=total)

            def compensated(done: int, total: int) -> None:
                progress.update(undo, completed=done, total=total)

            report = revert_import(
                crm, batch, system_context(), progress=scanned, compensating=compensated
            )
    except (DomainError, CommandError) as error:
        raise fail(str(error)) from None
    finally:
        crm.close()
    created = ", ".join(f"{n:,} {kind}s" for kind, n in report.created.items() if n)
    out.print(
        f"batch {batch}: created {created or 'nothing'}; {report.reverted:,} taken back now, "
        f"{report.already:,} already taken back",
        highlight=False,
    )
    if report.changed_only:
        out.print(
            f"{len(report.changed_only):,} records the batch only changed were left as they "
            "are: " + ", ".join(str(i) for i in report.changed_only[:20]),
            highlight=False,
        )
