from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from api.deps import AuthorityDep, ContextDep, CrmDep
from api.routes.common import HistoryQueryDep, PointInTimeDep, read, read_history, run
from api.schemas import HistoryPagePublic, InteractionPublic
from commands.context import Receipt
from commands.interactions import (
    CorrectInteraction,
    Correction,
    LogCall,
    LogEmail,
    LogMeeting,
    LogNote,
    LogSms,
    RetractInteraction,
    Retraction,
)
from domain.interaction import Interaction

router = APIRouter()
LOCATION = "/interactions"


@router.post("/calls", status_code=201)
def log_call(body: LogCall, crm: CrmDep, ctx: ContextDep, response: Response) -> Receipt:
    return run(crm, body, ctx, response, created=LOCATION)


@router.post("/emails", status_code=201)
def log_email(body: LogEmail, crm: CrmDep, ctx: ContextDep, response: Response) -> Receipt:
    return run(crm, body, ctx, response, created=LOCATION)


@router.post("/meetings", status_code=201)
def log_meeting(body: LogMeeting, crm: CrmDep, ctx: ContextDep, response: Response) -> Receipt:
    return run(crm, body, ctx, response, created=LOCATION)


@router.post("/notes", status_code=201)
def log_note(body: LogNote, crm: CrmDep, ctx: ContextDep, response: Response) -> Receipt:
    return run(crm, body, ctx, response, created=LOCATION)


@router.post("/sms", status_code=201)
def log_sms(body: LogSms, crm: CrmDep, ctx: ContextDep, response: Response) -> Receipt:
    return run(crm, body, ctx, response, created=LOCATION)


@router.get("/{interaction_id}")
def get_interaction(
    interaction_id: UUID, crm: CrmDep, actor: AuthorityDep, response: Response, at: PointInTimeDep
) -> InteractionPublic:
    """The interaction now, as recorded by ``as_of``, or at ``version``; ETag is its version."""
    return InteractionPublic.of(read(crm, Interaction, interaction_id, response, actor, at))


@router.get("/{interaction_id}/history")
def interaction_history(
    interaction_id: UUID, crm: CrmDep, actor: AuthorityDep, query: HistoryQueryDep
) -> HistoryPagePublic:
    """Every event of the interaction, oldest first: who, when, and each field before/after."""
    return read_history(crm, Interaction, interaction_id, query, actor)


@router.post("/{interaction_id}/corrections")
def correct_interaction(
    interaction_id: UUID, body: Correction, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    fields = body.model_dump(exclude_unset=True)
    command = CorrectInteraction(interaction_id=interaction_id, **fields)
    return run(crm, command, ctx, response)


@router.post("/{interaction_id}/retraction")
def retract_interaction(
    interaction_id: UUID, body: Retraction, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    command = RetractInteraction(interaction_id=interaction_id, **body.model_dump())
    return run(crm, command, ctx, response)
