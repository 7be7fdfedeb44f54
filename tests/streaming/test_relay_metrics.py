"""``crm relay --metrics-port``: its lag and position, scraped over HTTP while it runs
against a real broker — first down (the lag is every event, the broker marked down),
then up (the lag falls to 0 and the position reaches the head)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.projections.test_crash import open_crm, write_history
from tests.services import free_port, kafka_broker
from tests.streaming.test_relay import TIMEOUT, env, stored, watchdog

__all__ = ["env"]  # the store-parametrized environment of test_relay, used here as a fixture


def scrape(port: int) -> dict[str, float]:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    except httpx.TransportError:
        return {}  # not serving yet
    assert response.status_code == 200
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def wait_for(port: int, holds: Callable[[dict[str, float]], bool]) -> dict[str, float]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        metrics = scrape(port)
        if metrics and holds(metrics):
            return metrics
        if time.monotonic() > deadline:
            pytest.fail(f"the metrics never showed what was awaited; last seen: {metrics}")
        time.sleep(0.1)


def test_the_metrics_show_the_lag_while_the_broker_is_down_and_none_once_published(
    env: dict[str, str], tmp_path: Path
) -> None:
    crm = open_crm(env)
    try:
        write_history(crm, rounds=1)
    finally:
        crm.close()
    events = stored(env)
    head = events[-1][0]
    broker_port, metrics_port = free_port(), free_port()
    bootstrap = f"127.0.0.1:{broker_port}"
    process = subprocess.Popen(
        ["crm", "relay", "--metrics-port", str(metrics_port)],
        env={**env, "CRM_KAFKA_BOOTSTRAP": bootstrap},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    with watchdog(process):
        down = wait_for(metrics_port, lambda m: m["crm_relay_broker_up"] == 0)
        assert down["crm_store_head_position"] == head
        assert down["crm_relay_lag_events"] == head
        assert down["crm_relay_published_events_total"] == 0
        with kafka_broker(broker_port):
            up = wait_for(metrics_port, lambda m: m["crm_relay_lag_events"] == 0)
            assert up["crm_relay_broker_up"] == 1
            assert up["crm_relay_position"] == head
            assert up["crm_relay_published_events_total"] == len(events)
            process.terminate()
            process.wait(timeout=TIMEOUT)
    assert process.returncode == 0


def test_a_port_already_taken_fails_in_one_line(env: dict[str, str], broker: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            ["crm", "relay", "--metrics-port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in lines[0]
