"""fraudgraph: graph-neural-network identity fraud detection."""

__version__ = "0.1.0"
