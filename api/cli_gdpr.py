"""``crm erase-contact ID``: GDPR erasure of a contact from the command line."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from api.cli_common import app, fail, out, system_context
from api.cli_records import dumps, parse_id, store
from api.subject_access import subject_access
from commands.contacts import EraseContact
from commands.handlers import execute
from domain.contact import Contact, ErasureBasis
from replay.as_of import read_models_as_of


@app.command("erase-contact")
def erase_contact(
    contact_id: Annotated[str, typer.Argument(help="the contact's id")],
    basis: Annotated[ErasureBasis, typer.Option(help="the ground of GDPR art. 17(1) it rests on")],
    reference: Annotated[
        str | None, typer.Option(help="the ticket of the request, e.g. GDPR-42")
    ] = None,
) -> None:
    """Erase a contact's personal data for good (GDPR): its key is destroyed with a
    Contact.Erased event; its fields read as [erased] everywhere from then on. Run
    again, it appends nothing and shreds any snapshot left over."""
    try:
        command = EraseContact(contact_id=parse_id(contact_id), basis=basis, reference=reference)
    except ValidationError as error:
        raise fail("; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in error.errors())) from None
    with store() as crm:
        before = crm.find(Contact, command.contact_id)
        receipt = execute(crm, command, system_context())
    if before is not None and before.erased:
        out.print(
            f"Contact {receipt.id} was already erased (version {receipt.version}); nothing "
            "appended, no snapshot of it left"
        )
    else:
        out.print(
            f"Erased contact {receipt.id} (version {receipt.version}, position {receipt.position})"
        )


@app.command("subject-access")
def subject_access_command(
    contact_id: Annotated[str, typer.Argument(help="the contact's id")],
) -> None:
    """Everything held about a contact, as JSON (GDPR subject access); its audit rows
    come from the audit log built from the store as it stands."""
    with store() as crm:
        audit_log = read_models_as_of(crm.recorder, crm.position(), ["audit"])
        try:
            document = subject_access(crm, parse_id(contact_id), audit_log.store.reader())
        finally:
            audit_log.store.close()
    print(dumps(document))
