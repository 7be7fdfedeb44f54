"""The README's curl walk-through, run exactly as written against a real `crm serve`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.services import free_port, new_schema

README = Path(__file__).resolve().parents[2] / "README.md"
BIN = Path(sys.executable).parent


def walkthrough() -> str:
    text = README.read_text()
    match = re.search(
        r"<!-- walkthrough:start -->\s*```bash\n(.*?)```\s*<!-- walkthrough:end -->", text, re.S
    )
    assert match, "README has no walk-through block"
    return match.group(1)


@pytest.fixture(params=["sqlite", "postgres"])
def crm_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "CRM_DATA_DIR": str(tmp_path / "crm-data"),
        "CRM_PORT": str(free_port()),
    }
    if request.param == "postgres":
        database_url: str = request.getfixturevalue("postgres_database")
        env["CRM_DATABASE_URL"] = f"{database_url}?schema={new_schema(database_url)}"
    return env


@pytest.fixture
def running_crm(crm_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    init = subprocess.run(
        ["crm", "init"], env=crm_env, cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert init.returncode == 0, init.stderr
    assert init.stdout.strip().splitlines()[-1].startswith("crm_")
    server = subprocess.Popen(
        ["crm", "serve"],
        env=crm_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{crm_env['CRM_PORT']}/health"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, "crm serve exited"
            assert time.monotonic() < deadline, "crm serve did not come up"
            time.sleep(0.1)
        yield crm_env
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_walkthrough_works_as_written(
    running_crm: dict[str, str], tmp_path: Path
) -> None:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", walkthrough()],
        env=running_crm,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    replies = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    call, move, win, deal = replies
    assert call["created"]["interaction_id"] == call["id"]
    assert move["version"] == 2
    assert win["version"] == 3
    assert deal["status"] == "won"
    assert deal["version"] == 3
    assert deal["close_reason"] == "Best integration story"
    assert move["position"] < win["position"]
