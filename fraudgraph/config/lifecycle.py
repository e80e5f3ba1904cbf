"""The model lifecycle: tracked training runs and the model registry with its promotion gate."""

from __future__ import annotations

from pydantic import Field

from fraudgraph.config.base import Section


class GateTolerance(Section):
    """How far below production (absolute) a candidate may fall on a figure before the gate refuses it."""

    pr_auc: float = Field(ge=0, le=1)
    precision: float = Field(ge=0, le=1)
    recall: float = Field(ge=0, le=1)


class RegistrySettings(Section):
    tracking_uri: str | None
    dir: str
    model_name: str = Field(min_length=1)
    experiment: str = Field(min_length=1)
    tolerance: GateTolerance
    poll_s: float = Field(gt=0)
    drift_alert_psi: float = Field(gt=0)


class WarmStartSettings(Section):
    """A retrain's ``rgcn_edge`` started from the production model's validated fit instead of random
    weights, and the early stopping and learning rate it trains under then (``training``'s replaced)."""

    enabled: bool
    min_epochs: int = Field(ge=1)
    patience: int = Field(ge=1)
    max_epochs: int = Field(ge=1)
    learning_rate: float = Field(gt=0)


class RetrainSettings(Section):
    """The retraining job and the simulated month (``fraudgraph retrain``, ``fraudgraph month``)."""

    baselines: bool
    warm_start: WarmStartSettings
    every_days: int = Field(ge=1)
    consumer_events: int = Field(ge=1)
