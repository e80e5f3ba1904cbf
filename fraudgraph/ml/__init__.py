"""Machine learning: identity features and their scaler (:mod:`.features`), the edge-feature-aware
RGCN (:mod:`.model`) and the model artifact (:mod:`.artifact`). The only layer that imports DGL
(through :mod:`._dgl_compat`)."""


class ModelArtifactError(ValueError):
    """A model folder this fraudgraph cannot score with (another schema version, other features): a wrong
    set-up, reported in one line by the command line."""
