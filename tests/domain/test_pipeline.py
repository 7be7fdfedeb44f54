"""Pipelines: named, ordered stages with whole-percentage win probabilities."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from domain.errors import InvalidValueError
from domain.pipeline import (
    MAX_STAGES,
    DuplicateStageNameError,
    Pipeline,
    PipelineError,
    UnknownStageError,
)
from tests.domain.helpers import assert_no_new_events, given, only_event, refused


def sales() -> Pipeline:
    return given(Pipeline.create("Sales", [("Lead", 10), ("Proposal", 50), ("Negotiation", 80)]))


def stage_names(pipeline: Pipeline) -> list[str]:
    return [stage.name for stage in pipeline.stages]


# --- create ---------------------------------------------------------------------


def test_creating_a_pipeline_records_its_stages_in_order() -> None:
    pipeline = Pipeline.create(" Sales ", [(" Lead ", 10), ("Won", 100), ("Lost", 0)])

    created = only_event(pipeline, Pipeline.Created)
    assert created.name == "Sales"
    assert [(s.name, s.probability) for s in created.stages] == [
        ("Lead", 10),
        ("Won", 100),
        ("Lost", 0),
    ]
    assert len({s.id for s in created.stages}) == 3
    assert pipeline.first_stage.name == "Lead"


@pytest.mark.parametrize("probability", [-1, 101, 50.0, True, False, "50", None])
def test_a_probability_is_a_whole_percentage_from_0_to_100(probability: Any) -> None:
    with pytest.raises(InvalidValueError, match="probability"):
        Pipeline.create("Sales", [("Lead", probability)])


def test_a_pipeline_needs_a_stage() -> None:
    with pytest.raises(InvalidValueError, match="at least one stage"):
        Pipeline.create("Sales", [])


def test_a_pipeline_has_at_most_fifty_stages() -> None:
    with pytest.raises(InvalidValueError, match="at most"):
        Pipeline.create("Sales", [(f"Stage {n}", 10) for n in range(MAX_STAGES + 1)])


def test_stage_names_must_differ_regardless_of_case() -> None:
    with pytest.raises(DuplicateStageNameError):
        Pipeline.create("Sales", [("Lead", 10), ("LEAD ", 20)])


def test_a_stage_needs_a_name() -> None:
    with pytest.raises(InvalidValueError, match="stage name"):
        Pipeline.create("Sales", [("  ", 10)])


# --- rename ---------------------------------------------------------------------


def test_renaming_a_pipeline_records_the_new_and_previous_name() -> None:
    pipeline = sales()

    pipeline.rename(" Enterprise ")

    renamed = only_event(pipeline, Pipeline.Renamed)
    assert (renamed.name, renamed.previous) == ("Enterprise", "Sales")


def test_renaming_a_pipeline_to_its_name_records_nothing() -> None:
    pipeline = sales()

    pipeline.rename("Sales")

    assert_no_new_events(pipeline)


# --- add stage ------------------------------------------------------------------


def test_adding_a_stage_appends_it_by_default() -> None:
    pipeline = sales()

    stage = pipeline.add_stage("Won", 100)

    added = only_event(pipeline, Pipeline.StageAdded)
    assert (added.stage, added.position) == (stage, 3)
    assert stage_names(pipeline) == ["Lead", "Proposal", "Negotiation", "Won"]


def test_adding_a_stage_at_a_position_inserts_it_there() -> None:
    pipeline = sales()

    stage = pipeline.add_stage("Qualified", 25, position=1)

    added = only_event(pipeline, Pipeline.StageAdded)
    assert (added.stage.name, added.stage.probability, added.position) == ("Qualified", 25, 1)
    assert stage_names(pipeline) == ["Lead", "Qualified", "Proposal", "Negotiation"]
    assert pipeline.stages[1] == stage


def test_a_stage_can_be_added_at_the_front() -> None:
    pipeline = sales()

    pipeline.add_stage("Prospect", 5, position=0)

    assert only_event(pipeline, Pipeline.StageAdded).position == 0
    assert pipeline.first_stage.name == "Prospect"


@pytest.mark.parametrize("position", [-1, 4])
def test_a_stage_cannot_be_added_outside_the_pipeline(position: int) -> None:
    pipeline = sales()

    with refused(InvalidValueError, pipeline, match="position"):
        pipeline.add_stage("Won", 100, position=position)


def test_a_stage_cannot_be_added_with_the_name_of_another() -> None:
    pipeline = sales()

    with refused(DuplicateStageNameError, pipeline):
        pipeline.add_stage(" proposal ", 60)


def test_a_stage_cannot_be_added_with_a_bad_probability() -> None:
    pipeline = sales()

    with refused(InvalidValueError, pipeline):
        pipeline.add_stage("Won", 101)


def test_a_full_pipeline_refuses_another_stage() -> None:
    pipeline = given(Pipeline.create("Big", [(f"Stage {n}", 10) for n in range(MAX_STAGES)]))

    with refused(PipelineError, pipeline):
        pipeline.add_stage("One more", 10)


# --- rename and reweight stages -------------------------------------------------


def test_renaming_a_stage_records_the_new_and_previous_name() -> None:
    pipeline = sales()
    proposal = pipeline.find_stage("Proposal")

    pipeline.rename_stage(proposal.id, "Quote")

    renamed = only_event(pipeline, Pipeline.StageRenamed)
    assert (renamed.stage_id, renamed.name, renamed.previous) == (proposal.id, "Quote", "Proposal")
    assert pipeline.find_stage(proposal.id).name == "Quote"
    assert pipeline.find_stage(proposal.id).probability == 50


def test_a_stage_may_change_the_case_of_its_own_name() -> None:
    pipeline = sales()
    proposal = pipeline.find_stage("Proposal")

    pipeline.rename_stage(proposal.id, "PROPOSAL")

    assert only_event(pipeline, Pipeline.StageRenamed).name == "PROPOSAL"


def test_renaming_a_stage_to_its_name_records_nothing() -> None:
    pipeline = sales()

    pipeline.rename_stage(pipeline.find_stage("Lead").id, " Lead ")

    assert_no_new_events(pipeline)


def test_a_stage_cannot_take_the_name_of_another_stage() -> None:
    pipeline = sales()

    with refused(DuplicateStageNameError, pipeline):
        pipeline.rename_stage(pipeline.find_stage("Lead").id, "negotiation")


def test_reweighting_a_stage_records_the_new_and_previous_probability() -> None:
    pipeline = sales()
    lead = pipeline.find_stage("Lead")

    pipeline.reweight_stage(lead.id, 20)

    changed = only_event(pipeline, Pipeline.StageReweighted)
    assert (changed.stage_id, changed.probability, changed.previous) == (lead.id, 20, 10)
    assert pipeline.find_stage(lead.id).probability == 20


def test_reweighting_a_stage_to_its_probability_records_nothing() -> None:
    pipeline = sales()

    pipeline.reweight_stage(pipeline.find_stage("Lead").id, 10)

    assert_no_new_events(pipeline)


@pytest.mark.parametrize("probability", [-5, 150, 0.5, True])
def test_reweighting_refuses_a_probability_that_is_not_a_percentage(probability: Any) -> None:
    pipeline = sales()

    with refused(InvalidValueError, pipeline):
        pipeline.reweight_stage(pipeline.find_stage("Lead").id, probability)


# --- reorder --------------------------------------------------------------------


def test_reordering_stages_records_the_new_and_previous_order() -> None:
    pipeline = sales()
    lead, proposal, negotiation = (s.id for s in pipeline.stages)

    pipeline.reorder_stages([negotiation, lead, proposal])

    reordered = only_event(pipeline, Pipeline.StagesReordered)
    assert reordered.order == [negotiation, lead, proposal]
    assert reordered.previous == [lead, proposal, negotiation]
    assert stage_names(pipeline) == ["Negotiation", "Lead", "Proposal"]


def test_reordering_to_the_current_order_records_nothing() -> None:
    pipeline = sales()

    pipeline.reorder_stages([s.id for s in pipeline.stages])

    assert_no_new_events(pipeline)


def test_a_new_order_must_list_every_stage_exactly_once() -> None:
    pipeline = sales()
    lead, proposal, negotiation = (s.id for s in pipeline.stages)

    for order in (
        [lead, proposal],
        [lead, proposal, negotiation, lead],
        [lead, proposal, proposal],
        [lead, proposal, uuid4()],
        [],
    ):
        with refused(InvalidValueError, pipeline, match="exactly once"):
            pipeline.reorder_stages(order)
    assert stage_names(pipeline) == ["Lead", "Proposal", "Negotiation"]


# --- find -----------------------------------------------------------------------


def test_a_stage_is_found_by_id_by_its_text_or_by_name_in_any_case() -> None:
    pipeline = sales()
    proposal = pipeline.stages[1]

    assert pipeline.find_stage(proposal.id) == proposal
    assert pipeline.find_stage(str(proposal.id)) == proposal
    assert pipeline.find_stage(" proposal ") == proposal


@pytest.mark.parametrize("ref", ["Won", "", "4cf96b00-d8fb-49b9-8f0e-45ec16013a06"])
def test_finding_an_unknown_stage_is_refused(ref: str) -> None:
    pipeline = sales()

    with pytest.raises(UnknownStageError, match="has no stage"):
        pipeline.find_stage(ref)
    with pytest.raises(UnknownStageError):
        pipeline.check_has_stage(uuid4())


def test_an_unknown_stage_cannot_be_renamed_or_reweighted() -> None:
    pipeline = sales()

    with refused(UnknownStageError, pipeline):
        pipeline.rename_stage(uuid4(), "Quote")
    with refused(UnknownStageError, pipeline):
        pipeline.reweight_stage(uuid4(), 30)
    assert issubclass(UnknownStageError, InvalidValueError)
