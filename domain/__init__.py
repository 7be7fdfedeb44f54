"""The CRM's aggregates, their events and rules. Pure: no I/O, no HTTP, no SQL."""
