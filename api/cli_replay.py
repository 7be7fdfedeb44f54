"""``crm replay …``, ``crm history`` and ``crm verify``: the auditors' commands.

Each group of commands lives in a module of its own and registers on the shared app
(``api/cli_common.py``) when imported here.
"""

from __future__ import annotations

# Each import registers its commands.
from api import cli_access, cli_asof, cli_records, cli_verify  # noqa: F401
