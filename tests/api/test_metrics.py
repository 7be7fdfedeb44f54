"""``GET /metrics`` over real HTTP: the store's head and each read model's position and
lag, in Prometheus' text format, as they are when scraped."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from projections.registry import PROJECTORS


def scrape(api: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = api.get("/metrics", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_show_the_head_and_every_read_model_caught_up_with_it(
    api: httpx.Client,
) -> None:
    receipt = api.post("/accounts", json={"name": "Metrics Ltd"}).json()
    # The read models apply the command in the background: scrape until none lags.
    deadline = time.monotonic() + 20
    while True:
        metrics = scrape(api)
        lags = [v for (name, _), v in metrics.items() if name == "crm_projection_lag_events"]
        if (lags and not any(lags)) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    head = metrics[("crm_store_head_position", ())]
    assert head == receipt["position"]
    for name in PROJECTORS:
        labels = (("projection", name),)
        assert metrics[("crm_projection_position", labels)] == head
        assert metrics[("crm_projection_lag_events", labels)] == 0
    assert metrics[("crm_projection_runner_up", ())] == 1
    assert metrics[("crm_commit_saves_total", ())] >= 1
