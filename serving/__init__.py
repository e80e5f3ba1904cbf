"""fraudgraph serving entry points."""
