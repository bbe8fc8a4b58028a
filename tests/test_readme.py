"""The README documents every setting and every CLI command the code has."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent_core.cli import build_parser
from agent_core.config import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table():
    missing = [
        name.upper() for name in Settings.model_fields if f"| `{name.upper()}` |" not in README
    ]
    assert missing == []


def test_every_cli_command_is_in_the_cli_table():
    parser = build_parser()
    groups = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands = []
    for group, group_parser in groups.choices.items():
        actions = [a for a in group_parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not actions:
            commands.append(group)
        commands += [f"{group} {action}" for sub in actions for action in sub.choices]
    missing = [command for command in commands if f"| `{command}" not in README]
    assert missing == []
