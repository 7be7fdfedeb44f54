"""The write side: one command per intent, one handler each, and the application
that saves their events with metadata, optimistic concurrency and idempotency."""
