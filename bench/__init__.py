"""Benchmarks of Chronicle CRM: ``python -m bench --help`` lists them.

Each benchmark is a module here with ``SUMMARY``, ``configure(parser)`` and
``run(args) -> exit status``, named in :data:`bench.__main__.REGISTRY`. It measures its
baseline in the same run, prints a table with a ratio column against it, and writes
its figures as JSON (``bench/results/<name>-<timestamp>.json`` or ``--json PATH``).
"""
