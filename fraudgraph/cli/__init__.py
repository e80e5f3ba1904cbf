"""The command line and the main job: the only part of the library that composes ``etl``,
``training`` and ``serving`` (the import rule in ``tests/unit/fraudgraph/test_layers.py``)."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> None:
    """The ``fraudgraph`` console script (imported lazily, so ``python -m fraudgraph.cli.main`` runs clean)."""
    from fraudgraph.cli.main import main as run

    run(argv)
