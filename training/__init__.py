"""fraudgraph training entry points."""
