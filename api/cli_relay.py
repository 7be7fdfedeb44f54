"""``crm relay``: the store's events to a Kafka topic (``streaming/relay.py``)."""

from __future__ import annotations

import logging
import signal
import sys
from typing import Annotated

import typer

from api.cli_common import app, err, fail, out, progress_bar
from api.metrics import relay_registry, serve_metrics
from api.settings import Settings
from api.wiring import build_crm
from streaming.relay import MAX_BATCH, KafkaTarget, Relay


@app.command()
def relay(
    once: Annotated[
        bool, typer.Option("--once", help="publish everything in the store now, then exit")
    ] = False,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size", min=1, max=MAX_BATCH, help="default CRM_RELAY_BATCH_SIZE or 500"
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=1,
            max=65535,
            help="serve Prometheus metrics (lag, position) on CRM_HOST:PORT/metrics; "
            "default CRM_RELAY_METRICS_PORT, else none",
        ),
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="log where it resumes and every batch acknowledged"),
    ] = False,
) -> None:
    """Publish every event, in global order, to the Kafka topic CRM_KAFKA_TOPIC at
    CRM_KAFKA_BOOTSTRAP (at least once; resumes from the topic itself after a restart;
    retries with backoff while the broker is down). Without --once it follows new events."""
    logging.basicConfig(format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    logging.getLogger("crm.relay").setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # the relay logs its own retries
    settings = Settings()
    target = KafkaTarget(settings.kafka_bootstrap, settings.kafka_topic, settings.kafka_partitions)
    if not target.servers:
        raise fail("CRM_KAFKA_BOOTSTRAP names no server")
    try:
        crm = build_crm(settings)
    except Exception as error:
        raise fail(f"cannot open the event store ({settings.store_description}): {error}") from None
    try:
        publisher = Relay(
            crm.recorder,
            target,
            batch_size=batch_size or settings.relay_batch_size,
            poll_seconds=settings.projection_poll_seconds,
        )
        port = metrics_port or settings.relay_metrics_port
        if port is not None:
            try:
                serve_metrics(relay_registry(publisher), port, settings.host)
            except OSError as error:
                raise fail(
                    f"cannot serve metrics on {settings.host}:{port}: {error.strerror}"
                ) from None
        with progress_bar(f"relaying to {target.topic}") as progress:
            task = progress.add_task(f"relaying to {target.topic}", total=crm.position())

            def advance(position: int, head: int) -> None:
                progress.update(task, completed=position, total=head)

            publisher.progress = advance
            signal.signal(signal.SIGTERM, lambda *_: publisher.stop())
            signal.signal(signal.SIGINT, lambda *_: publisher.stop())
            try:
                position = publisher.run(once=once)
            except ValueError as error:  # a message on the topic that is not ours
                raise fail(f"topic {target.topic}: {error}") from None
    finally:
        crm.close()
    out.print(
        f"published {publisher.published:,} events to {target.topic}; "
        f"the topic holds every event up to position {position}"
    )
    err.print(f"store {settings.store_description}, broker {target.bootstrap}", highlight=False)
