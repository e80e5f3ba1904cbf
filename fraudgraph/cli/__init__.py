"""The command line and the main job: the only part of the library that composes ``etl``,
``training`` and ``serving`` (the import rule in ``tests/unit/test_layers.py``)."""

from fraudgraph.cli.main import cli, main

__all__ = ["cli", "main"]
