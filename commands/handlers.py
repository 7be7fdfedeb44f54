"""One explicit mapping from command to handler, and :func:`execute`, which runs a
handler and saves its decision with metadata, expected versions and idempotency."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from commands import accounts, contacts, deals, interactions, pipelines, roles, tasks, users
from commands.app import Crm
from commands.context import Context, Decision, Payload, Permit, Receipt
from commands.errors import CommandError, ConflictError
from commands.idempotency import MAX_KEY_LENGTH, IdempotencyRecord, fingerprint, record_id
from domain.contact import Contact
from domain.errors import DomainError, InvalidValueError

Handler = Callable[[Any, Crm, Context], Decision]

HANDLERS: dict[type[Payload], Handler] = {
    accounts.RegisterAccount: accounts.register_account,
    accounts.UpdateAccount: accounts.update_account,
    accounts.ReassignAccount: accounts.reassign_account,
    accounts.MoveAccount: accounts.move_account,
    accounts.ArchiveAccount: accounts.archive_account,
    accounts.RestoreAccount: accounts.restore_account,
    accounts.RemoveAccount: accounts.remove_account,
    contacts.CreateContact: contacts.create_contact,
    contacts.UpdateContact: contacts.update_contact,
    contacts.LinkContactToAccount: contacts.link_contact_to_account,
    contacts.ReassignContact: contacts.reassign_contact,
    contacts.TagContact: contacts.tag_contact,
    contacts.UntagContact: contacts.untag_contact,
    contacts.ChangeLifecycleStage: contacts.change_lifecycle_stage,
    contacts.RemoveContact: contacts.remove_contact,
    contacts.EraseContact: contacts.erase_contact,
    pipelines.CreatePipeline: pipelines.create_pipeline,
    pipelines.RenamePipeline: pipelines.rename_pipeline,
    pipelines.AddStage: pipelines.add_stage,
    pipelines.ChangeStage: pipelines.change_stage,
    pipelines.ReorderStages: pipelines.reorder_stages,
    deals.OpenDeal: deals.open_deal,
    deals.MoveDeal: deals.move_deal,
    deals.UpdateDeal: deals.update_deal,
    deals.ReassignDeal: deals.reassign_deal,
    deals.WinDeal: deals.win_deal,
    deals.LoseDeal: deals.lose_deal,
    deals.ReopenDeal: deals.reopen_deal,
    deals.RemoveDeal: deals.remove_deal,
    interactions.LogCall: interactions.log_interaction,
    interactions.LogEmail: interactions.log_interaction,
    interactions.LogMeeting: interactions.log_interaction,
    interactions.LogNote: interactions.log_interaction,
    interactions.LogSms: interactions.log_interaction,
    interactions.CorrectInteraction: interactions.correct_interaction,
    interactions.RetractInteraction: interactions.retract_interaction,
    tasks.CreateTask: tasks.create_task,
    tasks.UpdateTask: tasks.update_task,
    tasks.AssignTask: tasks.assign_task,
    tasks.CompleteTask: tasks.complete_task,
    tasks.ReopenTask: tasks.reopen_task,
    users.InviteUser: users.invite_user,
    users.GrantRole: users.grant_role,
    users.RevokeRole: users.revoke_role,
    users.DeactivateUser: users.deactivate_user,
    users.AssignManager: users.assign_manager,
    users.IssueToken: users.issue_token,
    users.RevokeToken: users.revoke_token,
    users.RotateToken: users.rotate_token,
    roles.CreateCustomRole: roles.create_custom_role,
    roles.EditCustomRole: roles.edit_custom_role,
    roles.RetireCustomRole: roles.retire_custom_role,
    roles.GrantCustomRole: roles.grant_custom_role,
    roles.RevokeCustomRole: roles.revoke_custom_role,
}

#: What the permission table must allow for each command (None: a command on users,
#: governed by the level rules of ``domain/roles.py``). Each command declares its own
#: ``PERMIT`` and its handler checks it against the owner of every record it touches;
#: ``crm permissions --commands`` prints this mapping.
PERMITS: dict[type[Payload], Permit | None] = {command: command.PERMIT for command in HANDLERS}


def execute(crm: Crm, command: Payload, ctx: Context) -> Receipt:
    """Run ``command`` as ``ctx.actor`` and save what it decided in one transaction.

    With an idempotency key, a command already carried out for the same actor and key
    returns its first receipt (``replayed``) and appends nothing; the same key with a
    different command is refused.
    """
    # Who may do what is each handler's first step: the table (``PERMITS``) for records,
    # the levels for users; a read-only user (an Auditor) is refused by both, but may
    # still look after their own tokens.
    handler = HANDLERS[type(command)]
    key = ctx.idempotency_key
    if key is None:
        return _decide_and_save(crm, handler, command, ctx, None)
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidValueError(f"an Idempotency-Key has 1 to {MAX_KEY_LENGTH} characters")
    actor = ctx.meta.actor or "anonymous"
    request = fingerprint(command)
    replay = _replay(crm, actor, key, request)
    if replay is not None:
        return replay
    try:
        return _decide_and_save(
            crm, handler, command, ctx, lambda decision: _record(actor, key, request, decision)
        )
    except (DomainError, CommandError):
        # A concurrent retry may have committed first: then its reply is ours.
        replay = _replay(crm, actor, key, request)
        if replay is not None:
            return replay
        raise


def _decide_and_save(
    crm: Crm,
    handler: Handler,
    command: Payload,
    ctx: Context,
    record: Callable[[Decision], IdempotencyRecord] | None,
) -> Receipt:
    decision = handler(command, crm, ctx)
    target = decision.target
    extra = [record(decision)] if record else []
    recordings = crm.save_with(ctx.meta, target, *decision.others, *extra)
    position = max((r.notification.id for r in recordings), default=0) or crm.position()
    return Receipt(
        id=target.id,
        version=target.version,
        position=position,
        created=decision.created,
        shown_once=decision.shown_once,
    )


def _record(actor: str, key: str, request: str, decision: Decision) -> IdempotencyRecord:
    return IdempotencyRecord(
        actor=actor,
        key=key,
        fingerprint=request,
        target_id=decision.target.id,
        target_version=decision.target.version,
        created=decision.created,
        subject_id=_sealed_for(decision),
    )


def _sealed_for(decision: Decision) -> UUID | None:
    """The contact under whose key the fingerprint of the command is sealed: the one it
    is about. Not an erasure's (its contact is erased by then): it carries nothing
    personal (id, basis, ticket), and sealed under the key it destroys, its retry could
    never be matched."""
    target = decision.target
    if isinstance(target, Contact) and not target.erased:
        return target.id
    return None


def _replay(crm: Crm, actor: str, key: str, request: str) -> Receipt | None:
    record = crm.find(IdempotencyRecord, record_id(actor, key))
    if record is None:
        return None
    record.check_same_request(request)
    # The first reply's events are at or before the current head, so the head is a
    # position at which a read model shows them.
    return Receipt(
        id=record.target_id,
        version=record.target_version,
        position=crm.position(),
        created=record.created,
        replayed=True,
    )


__all__ = ["HANDLERS", "PERMITS", "ConflictError", "execute"]
