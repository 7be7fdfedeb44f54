"""A projector process killed with SIGKILL while catching up, restarted, ends identical
to a clean rebuild: no gap, no duplicate — on SQLite and on PostgreSQL.

The events are written first; then ``crm project`` (small batches, so that most of
its life is spent inside one) is killed at random moments, again and again, until a
run gets to the end. Every kill that left the read models strictly between 0 and the
head interrupted a catch-up that had batches left to apply.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from commands.accounts import RegisterAccount
from commands.app import Crm, store_env
from commands.contacts import CreateContact
from commands.context import Context
from commands.deals import OpenDeal
from commands.handlers import execute
from commands.interactions import LogCall, LogNote
from commands.pipelines import CreatePipeline
from commands.users import InviteUser
from domain.roles import Authority, Role
from domain.user import User
from projections.files import ReadFiles
from projections.registry import PROJECTORS
from tests.services import new_schema


@pytest.fixture(params=["sqlite", "postgres"])
def crm_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "CRM_DATA_DIR": str(tmp_path / "data"),
        "CRM_PROJECTION_BATCH_SIZE": "60",
    }
    env.pop("CRM_DATABASE_URL", None)
    if request.param == "postgres":
        database_url: str = request.getfixturevalue("postgres_database")
        env["CRM_DATABASE_URL"] = f"{database_url}?schema={new_schema(database_url)}"
    return env


def open_crm(env: dict[str, str]) -> Crm:
    data = Path(env["CRM_DATA_DIR"])
    data.mkdir(parents=True, exist_ok=True)
    return Crm(env=store_env(env.get("CRM_DATABASE_URL"), str(data / "events.sqlite")))


def write_history(crm: Crm, rounds: int) -> int:
    """A CRM's worth of events through the real commands; returns the head position."""
    system = Context(actor=Authority.system(), source="cli")
    invited = execute(crm, InviteUser(email="o@example.com", name="O", role=Role.OWNER), system)
    ctx = Context(actor=crm.load(User, invited.id).authority, source="api")
    stages = [{"name": "Lead", "probability": 10}, {"name": "Proposal", "probability": 60}]
    pipeline = execute(crm, CreatePipeline.model_validate({"name": "Sales", "stages": stages}), ctx)
    for n in range(rounds):
        account = execute(crm, RegisterAccount(name=f"Account {n}", country="DE"), ctx)
        contact = execute(
            crm,
            CreateContact.model_validate(
                {"first_name": f"C{n}", "emails": [f"c{n}@example.com"], "account_id": account.id}
            ),
            ctx,
        )
        deal = execute(
            crm,
            OpenDeal.model_validate(
                {
                    "title": f"Deal {n}",
                    "account_id": account.id,
                    "pipeline_id": pipeline.id,
                    "amount": Decimal(1000 + n),
                    "currency": "EUR",
                }
            ),
            ctx,
        )
        call = {
            "occurred_at": "2026-10-01T09:00:00Z",
            "contact_ids": [contact.id],
            "deal_id": deal.id,
            "direction": "outbound",
            "duration_seconds": 60,
            "outcome": "connected",
        }
        execute(crm, LogCall.model_validate(call), ctx)
        note = {"occurred_at": "2026-10-02T09:00:00Z", "account_id": account.id, "body": "x"}
        execute(crm, LogNote.model_validate(note), ctx)
    return crm.position()


def dump(directory: Path) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    """Every row of every table of every read model, in a deterministic order."""
    files = ReadFiles(directory)
    result: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
    for name in PROJECTORS:
        con = duckdb.connect(str(files.current(name)), read_only=True)
        try:
            tables = [
                t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
            ]
            result[name] = {
                table: sorted(con.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)
                for table in tables
            }
        finally:
            con.close()
    return result


def positions(directory: Path) -> dict[str, int]:
    return {name: rows["projection_positions"][0][1] for name, rows in dump(directory).items()}


APPLYING = re.compile(r"applying positions \d+\.\.(\d+) to .*/(\w+)-\d+\.duckdb$")


def crm_cli(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    script = Path(sys.executable).with_name("crm")
    return subprocess.Popen(
        [str(script), *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def test_a_projector_killed_mid_batch_resumes_without_gap_or_duplicate(
    crm_env: dict[str, str],
) -> None:
    crm = open_crm(crm_env)
    try:
        head = write_history(crm, rounds=60)
    finally:
        crm.close()
    read_dir = Path(crm_env["CRM_DATA_DIR"]) / "read"
    rng = random.Random(20261123)

    mid_batch = 0
    for _ in range(100):
        process = crm_cli("project", "--once", "--verbose", env=crm_env)
        assert process.stderr is not None
        # One batch per read model per page: let a few through, kill inside the next.
        batches_to_let_through = rng.randint(0, 3 * len(PROJECTORS))
        batch_end, read_model = None, ""
        for line in process.stderr:
            match = APPLYING.search(line.decode().strip())
            if match is None:
                continue
            if batches_to_let_through == 0:
                batch_end, read_model = int(match[1]), match[2]
                break
            batches_to_let_through -= 1
        if batch_end is None:  # it got to the end
            assert process.wait(timeout=60) == 0
            break
        time.sleep(rng.uniform(0, 0.005))
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        # Killed before the read model committed that batch: a kill in mid-batch.
        if positions(read_dir)[read_model] < batch_end:
            mid_batch += 1
    else:
        pytest.fail("crm project --once never got to the end")
    assert mid_batch >= 3, f"only {mid_batch} kills landed in the middle of a batch"

    resumed = dump(read_dir)
    assert all(rows["projection_positions"][0][1] == head for rows in resumed.values())

    # The audit log has one row per event of a CRM record: no gap, no duplicate.
    audit_positions = [row[0] for row in resumed["audit"]["audit_log"]]
    assert len(audit_positions) == len(set(audit_positions))

    rebuild = subprocess.run(
        [str(Path(sys.executable).with_name("crm")), "rebuild"],
        env=crm_env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert rebuild.returncode == 0, rebuild.stderr.decode()
    rebuilt = dump(read_dir)
    assert not differences(resumed, rebuilt), "\n".join(differences(resumed, rebuilt))


def differences(
    resumed: dict[str, dict[str, list[tuple[Any, ...]]]],
    rebuilt: dict[str, dict[str, list[tuple[Any, ...]]]],
) -> list[str]:
    found = []
    for name in sorted(set(resumed) | set(rebuilt)):
        tables = set(resumed.get(name, {})) | set(rebuilt.get(name, {}))
        for table in sorted(tables):
            before = resumed.get(name, {}).get(table, [])
            after = rebuilt.get(name, {}).get(table, [])
            only_resumed = [row for row in before if row not in after]
            only_rebuilt = [row for row in after if row not in before]
            if only_resumed or only_rebuilt:
                found.append(
                    f"{name}.{table}: only after the kills {only_resumed[:5]}, "
                    f"only in the rebuild {only_rebuilt[:5]}"
                )
    return found
