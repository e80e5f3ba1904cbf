"""fraudgraph etl entry points."""
