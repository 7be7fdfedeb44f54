"""Our DuckDB read store passes eventsourcing's own TrackingRecorderTestCase."""

from __future__ import annotations

from eventsourcing.tests.persistence import TrackingRecorderTestCase

from projections.store import ReadStore


class TestReadStoreIsATrackingRecorder(TrackingRecorderTestCase):
    def create_recorder(self) -> ReadStore:
        return ReadStore(None)
