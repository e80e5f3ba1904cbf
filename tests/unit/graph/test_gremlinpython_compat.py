"""The lazy bytecode debug text: formatted in full only when gremlinpython's logger logs debug."""

from __future__ import annotations

import logging

from gremlin_python.process.graph_traversal import __
from gremlin_python.structure.graph import Graph

from fraudgraph.graph.gremlin._gremlinpython_compat import format_bytecode_only_when_logged


def test_bytecode_is_formatted_only_when_gremlinpython_logs_debug():
    format_bytecode_only_when_logged()
    format_bytecode_only_when_logged()  # a second install keeps one wrapper, not two
    rows = [{"customer": f"c{i:05d}", "events": i} for i in range(2_000)]
    bytecode = Graph().traversal().inject(rows).unfold().merge_v(__.select("k")).bytecode
    logger = logging.getLogger("gremlinpython")
    level = logger.level
    try:
        logger.setLevel(logging.INFO)
        short = repr(bytecode)
        assert len(short) < 100 and "c01999" not in short and "3 steps" in short
        logger.setLevel(logging.DEBUG)
        full = repr(bytecode)
        assert "c01999" in full and "merge_v" in full.replace("mergeV", "merge_v")
    finally:
        logger.setLevel(level)
