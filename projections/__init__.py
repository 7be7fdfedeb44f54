"""The read side: projectors that turn the event log into DuckDB read models."""
