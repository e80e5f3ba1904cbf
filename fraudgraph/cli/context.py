"""What every ``fraudgraph`` subcommand shares: the settings of one invocation, the ``--config`` and
``--json`` options, one-line errors for a wrong set-up, and the ``cli`` group they hang on."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from fraudgraph.config import ConfigError, Settings, load_settings
from fraudgraph.logs import configure_logging

log = logging.getLogger("fraudgraph.cli")


class AppContext:
    """Settings and output mode shared by the subcommands of one invocation."""

    def __init__(self) -> None:
        self.config_file: str | None = None
        self.json_output = False
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file)
            configure_logging(self._settings.logging.level)
        return self._settings

    def emit(self, summary: dict[str, Any], human: Callable[[dict[str, Any]], str] | None = None) -> None:
        if self.json_output:
            click.echo(json.dumps(summary, indent=2, sort_keys=True, default=str))
        else:
            click.echo(human(summary) if human else json.dumps(summary, indent=2, default=str))


pass_app = click.make_pass_decorator(AppContext, ensure=True)


def fail(message: str) -> NoReturn:
    """One line on stderr naming the problem, exit status 2, no traceback."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


def _setup_errors() -> tuple[type[BaseException], ...]:
    from fraudgraph.graph import GraphSetupError
    from fraudgraph.identity import IdentifierError
    from fraudgraph.ml import ModelArtifactError

    return (GraphSetupError, IdentifierError, FileNotFoundError, ModelArtifactError)


SETUP_ERRORS = _setup_errors()


# --config and --json: accepted before the subcommand (the group) and after it (common_options)
config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML file merged over conf/default.yaml.",
)
json_option = click.option(
    "--json", "json_output", is_flag=True, default=False, help="Print a machine-readable summary on stdout."
)
truth_option = click.option(
    "--truth",
    default=None,
    type=click.Path(dir_okay=False, exists=True),
    help="Ground truth Parquet, for evaluation only.",
)


def common_options(fn: Callable) -> Callable:
    """Add ``--config`` and ``--json`` to a subcommand (they also work before the subcommand)."""

    @config_option
    @json_option
    @functools.wraps(fn)
    def wrapper(*args: Any, config_file: str | None, json_output: bool, **kwargs: Any) -> Any:
        app = click.get_current_context().ensure_object(AppContext)
        if config_file:
            app.config_file = config_file
        app.json_output = app.json_output or json_output
        try:
            _ = app.settings  # validate configuration at start
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        try:
            return fn(*args, **kwargs)
        except SETUP_ERRORS as exc:  # a wrong set-up: one line naming the problem, exit 2, no traceback
            fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    return wrapper


def needs_pii_key(fn: Callable) -> Callable:
    """The command hashes identifiers or reads a graph built with a key: without a usable key it stops
    before Spark, a server or a long step starts (one line naming the setting, exit 2). Goes between
    :func:`common_options` and ``pass_app``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from fraudgraph.identity import IdentifierHasher

        IdentifierHasher.from_settings(click.get_current_context().ensure_object(AppContext).settings.privacy)
        return fn(*args, **kwargs)

    return wrapper


@click.group()
@config_option
@json_option
@click.version_option(package_name="identity-fraudgraph")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, json_output: bool) -> None:
    """fraudgraph: identity-graph fraud detection."""
    app = ctx.ensure_object(AppContext)
    app.config_file = config_file
    app.json_output = json_output
