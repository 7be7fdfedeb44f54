"""``crm replay board|funnel|forecast|sql`` run as the real ``crm`` script, on SQLite
and on PostgreSQL: read models as they stood at a moment or position, and bad input
refused in one line."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from commands.deals import MoveDeal, OpenDeal
from commands.handlers import execute
from commands.pipelines import CreatePipeline, StageSpec
from tests.api.test_cli_reads import Site, assert_fails_in_one_line, make_site, seed
from tests.services import new_schema


@pytest.fixture(params=["sqlite", "postgres"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Site:
    if request.param == "sqlite":
        return make_site(tmp_path)
    database_url: str = request.getfixturevalue("postgres_database")
    return make_site(tmp_path, f"{database_url}?schema={new_schema(database_url)}")


@dataclass(frozen=True)
class Story:
    pipeline: str
    moved: str
    #: Before the deal moved (and before the second deal opened).
    then: datetime
    then_position: int
    head: int


@pytest.fixture
def story(site: Site) -> Story:
    """Two deals open in Lead; then one moves to Proposal and a third opens."""
    seeded = seed(site, "Acme")
    with site.store() as crm:
        stages = [
            StageSpec(name="Lead", probability=10),
            StageSpec(name="Proposal", probability=50),
        ]
        pipeline = execute(crm, CreatePipeline(name="Sales", stages=stages), seeded.ctx).id
        moved = execute(
            crm,
            OpenDeal(title="Moved", amount=100, currency="EUR", pipeline_id=pipeline),
            seeded.ctx,
        )
        execute(
            crm,
            OpenDeal(title="Stays", amount=50, currency="EUR", pipeline_id=pipeline),
            seeded.ctx,
        )
        then_position = crm.position()
        then = datetime.now(UTC)
        execute(crm, MoveDeal(deal_id=moved.id, stage="Proposal"), seeded.ctx)
        execute(
            crm, OpenDeal(title="Later", amount=7, currency="EUR", pipeline_id=pipeline), seeded.ctx
        )
        return Story(str(pipeline), str(moved.id), then, then_position, crm.position())


def board_rows(site: Site, *args: str) -> list[tuple[str, str]]:
    result = site.crm("replay", "board", *args, "--format", "json")
    assert result.returncode == 0, result.stderr
    return [(row["stage"], row["title"]) for row in json.loads(result.stdout)]


def test_replay_board_shows_the_board_as_it_stood(site: Site, story: Story) -> None:
    pipeline = ("--pipeline", story.pipeline)
    then = board_rows(site, *pipeline, "--as-of", story.then.isoformat())
    by_position = board_rows(site, *pipeline, "--position", str(story.then_position))
    now = board_rows(site, *pipeline)
    before_it_all = site.crm("replay", "board", *pipeline, "--as-of", "2000-01-01")

    assert then == [("Lead", "Moved"), ("Lead", "Stays")]
    assert by_position == then
    assert now == [("Lead", "Stays"), ("Lead", "Later"), ("Proposal", "Moved")]
    assert_fails_in_one_line(before_it_all, "no pipeline", "as of position 0")


def test_replay_board_refuses_bad_input_in_one_line(site: Site, story: Story) -> None:
    pipeline = ("--pipeline", story.pipeline)
    cases = [
        (["--pipeline", "nope"], "not an id"),
        ([*pipeline, "--as-of", "30 September"], "--as-of"),
        ([*pipeline, "--as-of", "2026-09-30", "--position", "3"], "not both"),
        ([*pipeline, "--position", "-1"], "--position"),
        ([*pipeline, "--limit", "0"], "--limit"),
    ]
    for args, fragment in cases:
        assert_fails_in_one_line(site.crm("replay", "board", *args), fragment)


def test_replay_sql_queries_every_read_model_as_it_stood(site: Site, story: Story) -> None:
    query = (
        "SELECT (SELECT count(*) FROM board_deals) AS open_deals, "
        "(SELECT max(position) FROM audit_log) AS last, "
        "(SELECT min(position) FROM projection_positions) AS low, "
        "(SELECT max(position) FROM projection_positions) AS high"
    )
    then = site.crm("replay", "sql", query, "--as-of", story.then.isoformat(), "--format", "csv")
    now = site.crm("replay", "sql", query, "--format", "csv")

    assert then.returncode == 0, then.stderr
    assert list(csv.reader(io.StringIO(then.stdout)))[1] == ["2", *[str(story.then_position)] * 3]
    assert now.returncode == 0, now.stderr
    assert list(csv.reader(io.StringIO(now.stdout)))[1] == ["3", *[str(story.head)] * 3]


def test_replay_sql_runs_reads_only(site: Site, story: Story) -> None:
    assert_fails_in_one_line(site.crm("replay", "sql", "DELETE FROM audit_log"), "only SELECT")
    outside = site.crm("replay", "sql", "SELECT * FROM read_csv('/etc/passwd')")
    assert_fails_in_one_line(outside)
    assert_fails_in_one_line(site.crm("replay", "sql", "SELECT nope FROM audit_log"), "nope")


def test_replay_funnel_and_forecast_as_they_stood(site: Site, story: Story) -> None:
    funnel = site.crm(
        "replay", "funnel", "--pipeline", story.pipeline, "--as-of", story.then.isoformat(),
        "--format", "json",
    )  # fmt: skip
    forecast = site.crm(
        "replay", "forecast", "--position", str(story.then_position), "--format", "json"
    )

    assert funnel.returncode == 0, funnel.stderr
    assert [(row["name"], row["reached"]) for row in json.loads(funnel.stdout)] == [
        ("Lead", 2),
        ("Proposal", 0),
    ]
    assert forecast.returncode == 0, forecast.stderr
    assert [(row["deals"], row["amount"]) for row in json.loads(forecast.stdout)] == [(2, "150.00")]
