"""Pipelines: ordered stages, each with a win probability. Deals move through them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidValueError, StateConflictError
from domain.values import check_name

MAX_STAGES = 50


class PipelineError(StateConflictError):
    """Raised when a change conflicts with the pipeline's current state."""


class UnknownStageError(InvalidValueError):
    """Raised when a stage is named that the pipeline does not have."""


class DuplicateStageNameError(PipelineError):
    """Raised when two stages of one pipeline would share a name."""


@dataclass(frozen=True)
class Stage:
    id: UUID
    name: str
    probability: int

    @classmethod
    def new(cls, name: str, probability: int) -> Stage:
        check_probability(probability)
        return cls(id=uuid4(), name=check_name(name, "stage name", 100), probability=probability)


def check_probability(probability: int) -> None:
    if isinstance(probability, bool) or not isinstance(probability, int):
        raise InvalidValueError(f"a win probability is a whole percentage, not {probability!r}")
    if not 0 <= probability <= 100:
        raise InvalidValueError(f"a win probability lies between 0 and 100, not {probability}")


class Pipeline(Aggregate):
    class Created(Aggregate.Created):
        name: str
        stages: list[Stage]

    class Renamed(Aggregate.Event):
        name: str
        previous: str

    class StageAdded(Aggregate.Event):
        stage: Stage
        position: int

    class StageRenamed(Aggregate.Event):
        stage_id: UUID
        name: str
        previous: str

    class StageReweighted(Aggregate.Event):
        stage_id: UUID
        probability: int
        previous: int

    class StagesReordered(Aggregate.Event):
        order: list[UUID]
        previous: list[UUID]

    @event(Created)
    def __init__(self, name: str, stages: list[Stage]) -> None:
        self.name = name
        self.stages = list(stages)

    @classmethod
    def create(cls, name: str, stages: Sequence[tuple[str, int]]) -> Pipeline:
        if not stages:
            raise InvalidValueError("a pipeline needs at least one stage")
        if len(stages) > MAX_STAGES:
            raise InvalidValueError(f"a pipeline has at most {MAX_STAGES} stages")
        new_stages = [Stage.new(stage_name, probability) for stage_name, probability in stages]
        names = [stage.name.casefold() for stage in new_stages]
        if len(set(names)) != len(names):
            raise DuplicateStageNameError("stage names must differ within a pipeline")
        return cls(name=check_name(name, "pipeline name"), stages=new_stages)

    @property
    def first_stage(self) -> Stage:
        return self.stages[0]

    def find_stage(self, ref: str | UUID) -> Stage:
        """A stage by id, or by name (case-insensitive)."""
        for stage in self.stages:
            if stage.id == ref or (
                isinstance(ref, str)
                and (stage.name.casefold() == ref.strip().casefold() or str(stage.id) == ref)
            ):
                return stage
        raise UnknownStageError(f"pipeline {self.name!r} has no stage {ref!s}")

    def check_has_stage(self, stage_id: UUID) -> None:
        self.find_stage(stage_id)

    def check_name_free(self, name: str, except_id: UUID | None = None) -> None:
        for stage in self.stages:
            if stage.id != except_id and stage.name.casefold() == name.casefold():
                raise DuplicateStageNameError(f"pipeline already has a stage named {name!r}")

    def rename(self, name: str) -> None:
        name = check_name(name, "pipeline name")
        if name != self.name:
            self._rename(name=name, previous=self.name)

    @event(Renamed)
    def _rename(self, name: str, previous: str) -> None:
        self.name = name

    def add_stage(self, name: str, probability: int, position: int | None = None) -> Stage:
        if len(self.stages) >= MAX_STAGES:
            raise PipelineError(f"a pipeline has at most {MAX_STAGES} stages")
        stage = Stage.new(name, probability)
        self.check_name_free(stage.name)
        if position is None:
            position = len(self.stages)
        if not 0 <= position <= len(self.stages):
            raise InvalidValueError(f"position must lie between 0 and {len(self.stages)}")
        self._add_stage(stage=stage, position=position)
        return stage

    @event(StageAdded)
    def _add_stage(self, stage: Stage, position: int) -> None:
        self.stages.insert(position, stage)

    def rename_stage(self, stage_id: UUID, name: str) -> None:
        stage = self.find_stage(stage_id)
        name = check_name(name, "stage name", 100)
        self.check_name_free(name, except_id=stage.id)
        if name != stage.name:
            self._rename_stage(stage_id=stage.id, name=name, previous=stage.name)

    @event(StageRenamed)
    def _rename_stage(self, stage_id: UUID, name: str, previous: str) -> None:
        self._replace(stage_id, name=name)

    def reweight_stage(self, stage_id: UUID, probability: int) -> None:
        stage = self.find_stage(stage_id)
        check_probability(probability)
        if probability != stage.probability:
            self._reweight_stage(
                stage_id=stage.id, probability=probability, previous=stage.probability
            )

    @event(StageReweighted)
    def _reweight_stage(self, stage_id: UUID, probability: int, previous: int) -> None:
        self._replace(stage_id, probability=probability)

    def reorder_stages(self, order: Sequence[UUID]) -> None:
        current = [stage.id for stage in self.stages]
        if sorted(order, key=str) != sorted(current, key=str) or len(set(order)) != len(order):
            raise InvalidValueError("a new stage order must list every stage exactly once")
        if list(order) != current:
            self._reorder(order=list(order), previous=current)

    @event(StagesReordered)
    def _reorder(self, order: list[UUID], previous: list[UUID]) -> None:
        by_id = {stage.id: stage for stage in self.stages}
        self.stages = [by_id[stage_id] for stage_id in order]

    def _replace(self, stage_id: UUID, **changes: Any) -> None:
        self.stages = [replace(s, **changes) if s.id == stage_id else s for s in self.stages]
