"""The ``fraudgraph`` command line: one subcommand per stage.

Every subcommand takes ``--config FILE`` and ``--json`` (machine-readable
summary on stdout; logs go to stderr). The subcommands live by kind in
``graph_commands``, ``batch_commands``, ``live_commands`` and ``model_commands``; importing them
registers them on :data:`fraudgraph.cli.context.cli`.
"""

from __future__ import annotations

import sys

import click

from fraudgraph.cli import (  # noqa: F401  (registers the subcommands)
    batch_commands,
    graph_commands,
    live_commands,
    model_commands,
)
from fraudgraph.cli.context import cli
from fraudgraph.config import ConfigError

__all__ = ["cli", "main"]


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="fraudgraph", standalone_mode=True)
    except ConfigError as exc:  # raised before a subcommand could wrap it
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
