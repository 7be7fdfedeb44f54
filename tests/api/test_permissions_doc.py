"""The permission table is documented from itself: ``crm permissions`` prints it, and the
README's copy is that same text."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

import api.cli  # noqa: F401  (registers every command on the app)
from api.cli_common import app
from api.cli_permissions import commands_markdown, permissions_markdown
from commands.handlers import PERMITS
from domain.permissions import ACTIONS, PERMISSIONS, Action, Resource

README = Path(__file__).parents[2] / "README.md"


def test_the_readme_shows_the_table_as_it_is() -> None:
    text = README.read_text()
    copy = text.split("<!-- permissions:begin -->\n", 1)[1].split("<!-- permissions:end -->", 1)[0]
    assert copy == permissions_markdown()


def test_crm_permissions_prints_every_role_resource_and_action() -> None:
    result = CliRunner().invoke(app, ["permissions", "--commands"])

    assert result.exit_code == 0, result.output
    assert result.output.startswith(permissions_markdown())
    rows = [line.strip("| ").split(" | ") for line in permissions_markdown().splitlines()[2:]]
    assert len(rows) == sum(len(actions) for actions in ACTIONS.values())
    for resource, action, *scopes in rows:
        expected = [
            PERMISSIONS[role][Resource(resource)][Action(action)].value for role in PERMISSIONS
        ]
        assert scopes == expected
    assert commands_markdown() in result.output
    assert all(f"| {command.__name__} |" in result.output for command in PERMITS)
