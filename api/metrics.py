"""Prometheus metrics: how far the read models and the relay are behind the store.

Every figure is read when it is scraped (a custom collector), never kept up to date
on the write path: a scrape costs one ``max(notification id)`` query and the
in-memory positions. ``crm serve`` answers ``GET /metrics``; ``crm relay
--metrics-port N`` serves the relay's own on ``N``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from commands.app import Crm
from projections.host import ReadModels
from streaming.relay import Relay


class _Collect(Collector):
    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterator[Metric]:
        yield from self._collect()


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def server_registry(crm: Crm, reads: ReadModels) -> CollectorRegistry:
    """The metrics of ``crm serve`` (or ``crm project``): the store's head, each read
    model's position and lag, the runner's state, and group commit's counts."""

    def collect() -> Iterator[Metric]:
        head = crm.position()
        yield _gauge("crm_store_head_position", "Position of the last stored event", head)
        positions = GaugeMetricFamily(
            "crm_projection_position",
            "Last position the read model has applied",
            labels=["projection"],
        )
        lags = GaugeMetricFamily(
            "crm_projection_lag_events",
            "Events stored but not yet applied to the read model",
            labels=["projection"],
        )
        for name, position in sorted(reads.positions().items()):
            positions.add_metric([name], position)
            lags.add_metric([name], max(0, head - position))
        yield positions
        yield lags
        status = reads.runner.status
        yield _gauge(
            "crm_projection_runner_up",
            "1 while the projection runner runs; 0 once it stopped (on an error)",
            1 if status.running else 0,
        )
        stats = crm.committer.stats
        yield _counter(
            "crm_commit_transactions", "Store transactions of commands", stats.transactions
        )
        yield _counter("crm_commit_saves", "Command saves committed or refused", stats.saves)
        yield _counter(
            "crm_commit_retried_alone",
            "Saves of a group retried alone after a conflict in the group",
            stats.retried_alone,
        )

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collect(collect))
    return registry


def relay_registry(relay: Relay) -> CollectorRegistry:
    """The metrics of ``crm relay``: its position, the store's head, the lag between
    them, what it published, and whether the broker answers."""

    def collect() -> Iterator[Metric]:
        head = relay.head()
        position = relay.position or 0
        yield _gauge("crm_store_head_position", "Position of the last stored event", head)
        yield _gauge(
            "crm_relay_position",
            "Every event up to this position is acknowledged by the broker",
            position,
        )
        yield _gauge(
            "crm_relay_lag_events",
            "Events stored but not yet acknowledged by the broker",
            max(0, head - position),
        )
        yield _counter(
            "crm_relay_published_events", "Events published by this process", relay.published
        )
        yield _gauge(
            "crm_relay_broker_up",
            "1 while the broker acknowledges; 0 while the relay retries after an error",
            0 if relay.broker_error else 1,
        )

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collect(collect))
    return registry


def serve_metrics(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> None:
    """Serve ``registry`` on ``http://host:port/metrics`` from a daemon thread."""
    start_http_server(port, addr=host, registry=registry)
