"""The entry points (HTTP API and the ``crm`` command line), settings and wiring."""
