"""``crm project --source kafka``: the read models fed from the relay's topic
(``streaming/source.py``) instead of from the store."""

from __future__ import annotations

import logging
import signal
import sys

from api.cli_common import err, fail, out, progress_bar
from api.settings import Settings
from projections.files import ReadFiles
from projections.host import ReadModelsLockedError, answer_snapshot_requests, open_store
from projections.projector import ProjectionError
from projections.registry import PROJECTORS
from projections.store import ReadStore
from streaming.relay import KafkaTarget
from streaming.sequencer import SequenceError
from streaming.source import KafkaSource


def project_from_kafka(settings: Settings, group: str, once: bool, verbose: bool) -> None:
    logging.basicConfig(format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    if verbose:
        logging.getLogger("crm.projections").setLevel(logging.DEBUG)
    target = KafkaTarget(settings.kafka_bootstrap, settings.kafka_topic)
    if not target.servers:
        raise fail("CRM_KAFKA_BOOTSTRAP names no server")
    if not group.strip():
        raise fail("--group must name a consumer group")
    files = ReadFiles(settings.read_dir)
    stores: list[ReadStore] = []
    try:
        try:
            for name, make in PROJECTORS.items():
                stores.append(open_store(files.current(name), [make()]))
        except ReadModelsLockedError as error:
            raise fail(str(error)) from None
        source = KafkaSource(
            target, group, stores, batch_size=min(settings.projection_batch_size, 5_000)
        )
        signal.signal(signal.SIGTERM, lambda *_: source.stop())
        signal.signal(signal.SIGINT, lambda *_: source.stop())
        if not once:
            out.print(f"following {target.topic} in group {group}; Ctrl-C stops")
        description = f"reading {target.topic}"
        try:
            with progress_bar(description) as progress:
                task = progress.add_task(description, total=0)

                def advance(read: int, end: int) -> None:
                    progress.update(task, completed=read, total=end)

                by_name = dict(zip(PROJECTORS, stores, strict=True))
                source.run(
                    once=once,
                    progress=advance,
                    # `crm sql` and `crm export` meanwhile: as of the last committed batch.
                    between_batches=lambda: answer_snapshot_requests(files.directory, by_name),
                )
        except (ProjectionError, SequenceError) as error:
            raise fail(str(error)) from None
        except ValueError as error:  # a message on the topic that is not an envelope
            raise fail(f"topic {target.topic}: {error}") from None
        lag = source.lag()
        out.print(
            f"applied {source.applied:,} events from {target.topic}; "
            f"read models at position {source.position}"
            + (f"; {source.sequencer.held():,} events held back" if source.sequencer.held() else "")
        )
        err.print(
            f"group {group}, broker {target.bootstrap}, {source.sequencer.repeats:,} repeats "
            f"dropped, {lag.behind:,} messages behind",
            highlight=False,
        )
    finally:
        for store in stores:
            store.close()
