"""The deployment files: ``docker-compose.yml`` as ``docker-compose config`` reads it
(every role there, with its command, health check and start order; settings only
through ``CRM_*`` variables the application reads), the ``Dockerfile``, and
``crm init --exist-ok``, which the compose file's one-shot ``init`` runs on every start.

``docker-compose config`` needs no Docker daemon. Without docker-compose (or
``docker compose``) the compose tests are skipped (a failure under CRM_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from api.cli import main  # noqa: F401  (registers every command)
from api.cli_common import app as cli
from api.settings import Settings
from tests.commands.test_metadata import cli_environment
from tests.conftest import Store
from tests.services import unavailable

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
PASSWORD = "not-a-real-password"


def compose_command() -> list[str]:
    found = shutil.which("docker-compose")
    if found:
        return [found]
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    unavailable(
        "docker-compose is not installed",
        "apt-get install docker-compose (or Docker's compose plugin)",
    )
    raise AssertionError("unreachable")  # unavailable() skips or fails


def compose_config(**env: str) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` of the repository's file, in an environment of only
    ``env`` (and PATH): nothing of the caller's leaks into the interpolation."""
    return subprocess.run(
        [*compose_command(), "--project-directory", str(REPO), "-f", str(COMPOSE_FILE), "config"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    done = compose_config(POSTGRES_PASSWORD=PASSWORD)
    assert done.returncode == 0, done.stderr
    parsed: dict[str, Any] = yaml.safe_load(done.stdout)
    return parsed


def services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = config["services"]
    return found


def command(service: dict[str, Any]) -> list[str]:
    given = service["command"]
    return given.split() if isinstance(given, str) else [str(part) for part in given]


def environment(service: dict[str, Any]) -> dict[str, str]:
    given = service.get("environment") or {}
    if isinstance(given, list):  # KEY=VALUE items
        return dict(item.split("=", 1) for item in given)
    return {key: "" if value is None else str(value) for key, value in given.items()}


def conditions(service: dict[str, Any]) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service.get("depends_on", {}).items()}


def health_test(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


def setting_names() -> set[str]:
    return {f"CRM_{name.upper()}" for name in Settings.model_fields}


def test_every_role_runs_the_crm_image_with_its_command(config: dict[str, Any]) -> None:
    roles = services(config)
    assert set(roles) == {"postgres", "kafka", "init", "api", "relay", "projector"}
    crm_roles = ("init", "api", "relay", "projector")
    assert {roles[name]["image"] for name in crm_roles} == {"chronicle-crm:latest"}
    assert all("build" in roles[name] for name in crm_roles)
    assert command(roles["init"]) == ["init", "--exist-ok"]
    assert command(roles["api"]) == ["serve"]
    assert command(roles["relay"]) == ["relay"]
    assert command(roles["projector"]) == ["project", "--source", "kafka", "--group", "projectors"]
    assert roles["init"]["restart"] == "no"  # a one-shot: compose must not start it again
    assert [int(p["target"]) for p in roles["api"]["ports"]] == [8000]


def test_the_crm_roles_use_postgresql_and_the_kafka_service(config: dict[str, Any]) -> None:
    roles = services(config)
    for name in ("init", "api", "relay", "projector"):
        env = environment(roles[name])
        assert env["CRM_DATABASE_URL"] == f"postgresql://crm:{PASSWORD}@postgres:5432/crm"
        assert env["CRM_KAFKA_BOOTSTRAP"] == "kafka:9092"
    postgres = environment(roles["postgres"])
    assert (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"]) == ("crm", "crm")
    assert postgres["POSTGRES_PASSWORD"] == PASSWORD


def test_kafka_runs_in_kraft_mode_without_zookeeper(config: dict[str, Any]) -> None:
    roles = services(config)
    kafka = roles["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert not any("zookeeper" in f"{name} {value}".lower() for name, value in env.items())
    assert not any("zookeeper" in name for name in roles)


def test_services_are_health_checked_and_started_in_order(config: dict[str, Any]) -> None:
    roles = services(config)
    assert health_test(roles["postgres"]).startswith("CMD pg_isready")
    assert "kafka-broker-api-versions.sh --bootstrap-server localhost:9092" in health_test(
        roles["kafka"]
    )
    assert "http://127.0.0.1:8000/health" in health_test(roles["api"])
    # The relay serves its metrics (lag, broker up) where its health check reads them.
    assert environment(roles["relay"])["CRM_RELAY_METRICS_PORT"] == "9108"
    assert "http://127.0.0.1:9108/metrics" in health_test(roles["relay"])
    assert conditions(roles["init"]) == {"postgres": "service_healthy"}
    done = "service_completed_successfully"
    assert conditions(roles["api"]) == {"postgres": "service_healthy", "init": done}
    assert conditions(roles["relay"]) == {
        "postgres": "service_healthy",
        "kafka": "service_healthy",
        "init": done,
    }
    assert conditions(roles["projector"]) == {"kafka": "service_healthy", "init": done}


def mounts(service: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(source, target) of each volume; source None for an anonymous volume. Short
    syntax ``[source:]target[:mode]`` (docker-compose v1) or long syntax (v2)."""
    found: list[tuple[str | None, str]] = []
    for mount in service.get("volumes", []):
        if isinstance(mount, dict):
            found.append((mount.get("source") or None, mount["target"]))
            continue
        parts = mount.split(":")
        if len(parts) == 1:
            found.append((None, parts[0]))
        else:
            found.append((parts[0], parts[1]))
    return found


def test_state_lives_in_volumes_and_projectors_can_scale(config: dict[str, Any]) -> None:
    roles = services(config)
    assert mounts(roles["postgres"]) == [("pgdata", "/var/lib/postgresql/data")]
    assert mounts(roles["kafka"]) == [("kafka-data", "/var/lib/kafka/data")]
    assert mounts(roles["api"]) == [("api-data", "/var/lib/crm/data")]
    # A scaled projector must not share a DuckDB file: its volume is anonymous (one
    # per replica), and it publishes no port that replicas would fight over.
    assert mounts(roles["projector"]) == [(None, "/var/lib/crm/data")]
    assert "ports" not in roles["projector"]
    assert "container_name" not in roles["projector"]


def test_every_crm_variable_in_the_compose_file_is_a_setting(config: dict[str, Any]) -> None:
    known = setting_names()
    named = set(re.findall(r"\bCRM_[A-Z0-9_]+", COMPOSE_FILE.read_text(encoding="utf-8")))
    assert named, "the compose file names no CRM_ setting"
    assert named <= known, f"not read by the application: {sorted(named - known)}"
    for name, service in services(config).items():
        crm_vars = {key for key in environment(service) if key.startswith("CRM_")}
        assert crm_vars <= known, f"{name}: not read by the application: {crm_vars - known}"


def test_the_compose_file_refuses_to_run_without_a_database_password() -> None:
    done = compose_config()
    assert done.returncode != 0
    assert "set POSTGRES_PASSWORD" in done.stderr


def test_the_image_installs_every_package_and_runs_crm_as_a_user() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    assert instructions[0] == "FROM python:3.11-slim"
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users
    assert users[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["crm"]' in instructions
    assert any(line.startswith("RUN pip install .") for line in instructions)
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = project["tool"]["setuptools"]["packages"]["find"]["include"]
    runtime = {p.rstrip("*") for p in patterns} - {"bench"}
    copied = {s for line in instructions if line.startswith("COPY ") for s in line.split()[1:-1]}
    assert runtime <= copied, f"packages missing from the image: {runtime - copied}"
    assert {"pyproject.toml", "README.md"} <= copied  # pyproject names the README


def test_init_with_exist_ok_succeeds_again_without_a_second_owner(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("CRM_DATABASE_URL", "CRM_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    env = cli_environment(store)

    first = runner.invoke(cli, ["init", "--exist-ok"], env=env)
    again = runner.invoke(cli, ["init", "--exist-ok"], env=env)
    plain = runner.invoke(cli, ["init"], env=env)

    assert first.exit_code == 0, first.output
    token = first.output.strip().splitlines()[-1]
    assert token.startswith("crm_")  # the Owner's token, once
    assert again.exit_code == 0, again.output
    assert "Already initialised" in again.output
    assert token not in again.output
    assert plain.exit_code == 1
    assert "already initialised" in plain.output
