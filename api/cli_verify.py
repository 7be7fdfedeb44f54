"""``crm verify`` and ``crm keygen``: tamper evidence (``replay/verify.py``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from eventsourcing.persistence import InterfaceError, OperationalError

from api.cli_common import app, err, fail, out, progress_bar
from api.settings import Settings
from api.wiring import build_crm, crm_env
from commands.app import Crm
from commands.chain import (
    AdoptError,
    ChainedPostgresApplicationRecorder,
    ChainedSQLiteApplicationRecorder,
    adopt_unchained,
)
from projections.analysts import one_line
from replay.verify import (
    Checkpoint,
    StoreAddress,
    Verified,
    VerifyError,
    generate_key,
    load_private_key,
    load_public_key,
    public_pem,
    read_checkpoint,
    sign_checkpoint,
    verify,
    verify_snapshots,
)


@app.command("verify")
def verify_store(
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="after a clean walk, write the chain's head signed with CRM_SIGNING_KEY_FILE "
            "to this new file",
        ),
    ] = None,
    against: Annotated[
        Path | None,
        typer.Option(
            "--against",
            help="prove that history up to this signed checkpoint is unchanged (the key: "
            "--public-key, CRM_VERIFY_KEY_FILE or CRM_SIGNING_KEY_FILE)",
        ),
    ] = None,
    public_key: Annotated[
        Path | None, typer.Option("--public-key", help="PEM public key for --against")
    ] = None,
    adopt: Annotated[
        bool,
        typer.Option(
            "--adopt",
            help="first chain the events of a store written before the hash chain existed "
            "(once, after upgrading; refused for anything else)",
        ),
    ] = False,
    snapshots: Annotated[
        bool,
        typer.Option(
            "--snapshots",
            help="also check every snapshot against the record its events make (slower: "
            "decodes every event of every record with snapshots)",
        ),
    ] = False,
    workers: Annotated[
        int,
        typer.Option("--workers", min=1, max=64, help="processes walking ranges of a large store"),
    ] = os.cpu_count() or 1,
) -> None:
    """Check every stored event against the hash chain: print OK, or the first event
    that was altered, removed, inserted or reordered, and exit 1."""
    settings = Settings()
    try:
        signing_key = None
        if checkpoint is not None:
            if settings.signing_key_file is None:
                raise VerifyError("set CRM_SIGNING_KEY_FILE (make one with `crm keygen FILE`)")
            if checkpoint.exists():
                raise VerifyError(f"{checkpoint} exists; a checkpoint is never overwritten")
            signing_key = load_private_key(settings.signing_key_file)
        proven: Checkpoint | None = None
        if against is not None:
            key_file = public_key or settings.verify_key_file or settings.signing_key_file
            if key_file is None:
                raise VerifyError(
                    "give --public-key, or set CRM_VERIFY_KEY_FILE or CRM_SIGNING_KEY_FILE"
                )
            proven = read_checkpoint(against, load_public_key(key_file))
    except VerifyError as error:
        raise fail(str(error)) from None
    crm = build_crm(settings)
    try:
        if adopt:
            adopt_old_events(crm)
        with progress_bar("verifying") as progress:
            task = progress.add_task("verifying", total=crm.position())

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            try:
                verified = verify(
                    crm.recorder,
                    checkpoint=proven,
                    progress=advance,
                    store=StoreAddress(crm.name, crm_env(settings)),
                    workers=workers,
                )
            except VerifyError as error:
                raise fail(str(error)) from None
            except (OperationalError, InterfaceError) as error:
                raise fail(f"the event store is unavailable: {one_line(error)}") from None
        if verified.problem is not None:
            raise fail(f"TAMPERED ({verified.problem.kind}): {verified.problem.message}")
        report(verified, settings.store_description)
        if snapshots:
            check_snapshots(crm)
    finally:
        crm.close()
    if proven is not None:
        out.print(
            f"matches the checkpoint {against} of {proven.created_at} "
            f"({proven.events:,} events up to position {proven.position})"
        )
    if checkpoint is not None and signing_key is not None:
        written = sign_checkpoint(verified, signing_key)
        try:
            with checkpoint.open("xb") as file:
                file.write(written.to_json())
        except OSError as error:
            raise fail(f"cannot write {checkpoint}: {error}") from None
        out.print(f"checkpoint of position {written.position} signed and written to {checkpoint}")


def adopt_old_events(crm: Crm) -> None:
    recorder = crm.recorder
    if not isinstance(
        recorder, ChainedSQLiteApplicationRecorder | ChainedPostgresApplicationRecorder
    ):
        raise fail(f"cannot chain a store kept by {type(recorder).__name__}")
    try:
        adopted = adopt_unchained(recorder)
    except AdoptError as error:
        raise fail(f"refused to adopt: {error}") from None
    except (OperationalError, InterfaceError) as error:
        raise fail(f"the event store is unavailable: {one_line(error)}") from None
    if adopted:
        out.print(f"chained {adopted:,} events written before the hash chain existed")
    else:
        out.print("every event was already in the chain: nothing to adopt")


def check_snapshots(crm: Crm) -> None:
    with progress_bar("snapshots") as progress:
        task = progress.add_task("snapshots", total=0)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            checked = verify_snapshots(crm, progress=advance)
        except (OperationalError, InterfaceError) as error:
            raise fail(f"the event store is unavailable: {one_line(error)}") from None
    if checked.problem is not None:
        raise fail(f"TAMPERED ({checked.problem.kind}): {checked.problem.message}")
    out.print(
        f"OK: {checked.snapshots:,} snapshots of {checked.records:,} records match their "
        f"events ({checked.seconds:.1f} s)"
    )


def report(verified: Verified, store: str) -> None:
    out.print(
        f"OK: {verified.events:,} events up to position {verified.position} in {store} "
        f"match the hash chain ({verified.events_per_second:,.0f} events/s); "
        f"head {verified.head.hex()}"
    )


@app.command()
def keygen(
    path: Annotated[Path, typer.Argument(help="where to write the new private key (PEM)")],
) -> None:
    """Make an Ed25519 key for signing checkpoints; keep it away from the database."""
    try:
        key = generate_key(path)
    except (VerifyError, OSError) as error:
        raise fail(str(error)) from None
    err.print(f"private key written to {path} (mode 600); set CRM_SIGNING_KEY_FILE={path}")
    out.print(public_pem(key), end="")
