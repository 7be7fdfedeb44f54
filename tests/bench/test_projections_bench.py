"""``python -m bench projections`` runs end to end on a small history, on both stores,
and every figure it reports comes from a complete run: every read model rebuilt over
every event, every live command visible in every read model. No timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main
from projections.registry import PROJECTORS
from tests.services import POSTGRES_URL, unavailable


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_bench_projections_reports_complete_runs(store: str, tmp_path: Path) -> None:
    figures_path = tmp_path / "figures.json"
    status = main(
        [
            "projections",
            f"--stores={store}",
            f"--postgres-url={POSTGRES_URL}",
            "--events=3000",
            "--page=1000",
            "--profile=always",
            "--profile-events=1000",
            "--lag-rate=40",
            "--lag-seconds=1.5",
            "--lag-threads=2",
            "--board-deals=400",
            "--board-queries=3",
            f"--json={figures_path}",
        ]
    )
    figures = json.loads(figures_path.read_text())
    if store in figures["skipped"]:
        unavailable(figures["skipped"][store])
    assert status == 0
    result = figures["stores"][store]
    events = result["load"]["events"]
    assert events >= 3000

    passes = result["passes"]
    expected = {
        "read",
        "baseline",
        "decode",
        "bulk",
        "all",
        *(f"alone:{name}" for name in PROJECTORS),
    }
    assert set(passes) == expected
    assert all(figures["events"] == events for figures in passes.values())
    parts = {"read", "decode", "applying", *(f"apply:{name}" for name in PROJECTORS)}
    assert set(passes["all"]["parts_s"]) == parts
    assert set(passes["bulk"]["parts_s"]) == {
        "read",
        "prepare",
        *(f"build:{name}" for name in PROJECTORS),
    }
    assert result["profile"]["events"] == 1000

    alone, lag = result["lag"]
    assert not alone["read_models"]
    assert lag["read_models"]
    assert alone["commands"] > 0
    assert alone["failures"] == {}
    assert alone["lag"]["count"] == 0  # nothing to lag behind: no read model ran
    assert lag["commands"] > 0
    assert lag["failures"] == {}
    assert lag["not_visible"] == 0
    assert lag["runner_error"] is None
    assert lag["lag"]["count"] == lag["commands"]

    if "board" in PROJECTORS:
        board = result["board"]
        assert board["open_deals"] >= 400
        assert all(q["count"] == 3 for q in board["queries"].values())
