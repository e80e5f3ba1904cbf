"""The model lifecycle: every training run tracked in MLflow (:mod:`.tracking`), the model registry with
its stages (:mod:`.registry`) and the rule that gates a promotion (:mod:`.gate`).

MLflow stays behind these modules: the rest of fraudgraph names runs, versions and stages only.
"""

from .gate import GATE_FIGURES, regressions
from .registry import STAGES, ModelRegistry, ModelVersion, ProductionMoved, RegistryError
from .tracking import RunTracker, snapshot_fingerprint

__all__ = [
    "GATE_FIGURES",
    "STAGES",
    "ModelRegistry",
    "ModelVersion",
    "ProductionMoved",
    "RegistryError",
    "RunTracker",
    "regressions",
    "snapshot_fingerprint",
]
