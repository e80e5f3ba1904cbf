"""Typed, validated settings loaded from ``conf/default.yaml``.

Precedence (lowest first): the packaged ``conf/default.yaml``, a ``--config``
file (deep-merged), environment overrides ``FRAUDGRAPH_<SECTION>__<KEY>``.
Unknown keys and wrong types fail at start with the dotted key path and the
reason (:class:`ConfigError`).

Every default lives in ``conf/default.yaml`` and only there: the classes below
state types and bounds, so a key missing from the file fails at start too.
They live by concern in ``infrastructure``, ``world``, ``detection``,
``serving`` and ``lifecycle``; this module loads and validates them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fraudgraph.config.base import ConfigError, Section
from fraudgraph.config.detection import (
    BurstRule,
    ComponentRule,
    DayOneRuleSettings,
    EventTagSettings,
    ExampleSettings,
    GbdtSettings,
    HeuristicSettings,
    LabelConfidence,
    LabelSettings,
    RuleSettings,
    SharedCardRule,
    SplitSettings,
    TrainingSettings,
)
from fraudgraph.config.infrastructure import (
    CassandraServerSettings,
    EtlSettings,
    GraphSettings,
    GremlinServerSettings,
    GremlinSettings,
    JanusGraphServerSettings,
    KafkaServerSettings,
    LoggingSettings,
    PrivacySettings,
    SparkSettings,
    SqliteSettings,
    SqsServerSettings,
)
from fraudgraph.config.lifecycle import GateTolerance, RegistrySettings, RetrainSettings
from fraudgraph.config.serving import ApiSettings, ConsumerSettings, OnlineSettings, ReplaySettings, Scope, TokenSpec
from fraudgraph.config.world import BlockingSettings, FraudWorldSettings, LegitWorldSettings, WorldSettings

ENV_PREFIX = "FRAUDGRAPH_"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# conf/ sits beside the package in a checkout; FRAUDGRAPH_CONF_DIR points elsewhere.
CONF_DIR = Path(os.environ.get("FRAUDGRAPH_CONF_DIR", PROJECT_ROOT / "conf"))
DEFAULT_CONFIG = CONF_DIR / "default.yaml"


class Settings(Section):
    """Every tunable of fraudgraph; one attribute per section of ``conf/default.yaml``."""

    graph: GraphSettings
    privacy: PrivacySettings
    gremlin_server: GremlinServerSettings
    janusgraph_server: JanusGraphServerSettings
    cassandra_server: CassandraServerSettings
    world: WorldSettings
    spark: SparkSettings
    etl: EtlSettings
    event_tags: EventTagSettings
    labels: LabelSettings
    training: TrainingSettings
    rules: RuleSettings
    online: OnlineSettings
    consumer: ConsumerSettings
    replay: ReplaySettings
    registry: RegistrySettings
    retrain: RetrainSettings
    api: ApiSettings
    kafka_server: KafkaServerSettings
    sqs_server: SqsServerSettings
    logging: LoggingSettings


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path}: not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: top level must be a mapping of sections")
    return data


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Nested dict from ``FRAUDGRAPH_SECTION__KEY[__SUBKEY]=value`` variables.

    Only variables with a double underscore after the prefix are overrides;
    ``FRAUDGRAPH_PII_KEY`` and similar single names are read where they are used.
    Values are parsed as YAML (``8``, ``true``, ``[a, b]``, ``{"t": ["read"]}``).
    """
    out: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name[len(ENV_PREFIX) :]:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if any(not p for p in path):
            raise ConfigError(f"environment variable {name}: empty key segment")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name}: conflicts with another override")
        node[path[-1]] = value
    return out


def _format_validation_error(exc: ValidationError, origin: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{loc}: {msg}")
    return f"invalid configuration ({origin}): " + "; ".join(lines)


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Load defaults, then ``config_file``, then environment overrides, and validate.

    Raises :class:`ConfigError` naming the dotted key path of every bad value.
    """
    environ = os.environ if environ is None else environ
    if not DEFAULT_CONFIG.exists():  # every default lives there: without it nothing can be validated
        raise ConfigError(f"{DEFAULT_CONFIG}: no such file (the defaults; set FRAUDGRAPH_CONF_DIR to the conf/ folder)")
    data = _read_yaml(DEFAULT_CONFIG)
    origin = [str(DEFAULT_CONFIG)]
    if config_file:
        data = _deep_merge(data, _read_yaml(Path(config_file)))
        origin.append(str(config_file))
    overrides = env_overrides(environ)
    if overrides:
        data = _deep_merge(data, overrides)
        origin.append("environment")
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, " + ".join(origin))) from None


__all__ = [
    "CassandraServerSettings",
    "GateTolerance",
    "RegistrySettings",
    "RetrainSettings",
    "ApiSettings",
    "BlockingSettings",
    "BurstRule",
    "CONF_DIR",
    "ComponentRule",
    "EventTagSettings",
    "ConfigError",
    "ConsumerSettings",
    "DEFAULT_CONFIG",
    "DayOneRuleSettings",
    "ENV_PREFIX",
    "EtlSettings",
    "ExampleSettings",
    "FraudWorldSettings",
    "GbdtSettings",
    "GraphSettings",
    "GremlinServerSettings",
    "GremlinSettings",
    "HeuristicSettings",
    "JanusGraphServerSettings",
    "KafkaServerSettings",
    "LabelConfidence",
    "LabelSettings",
    "LegitWorldSettings",
    "LoggingSettings",
    "OnlineSettings",
    "PROJECT_ROOT",
    "PrivacySettings",
    "ReplaySettings",
    "RuleSettings",
    "Scope",
    "Section",
    "Settings",
    "SharedCardRule",
    "SparkSettings",
    "SplitSettings",
    "SqliteSettings",
    "SqsServerSettings",
    "TokenSpec",
    "TrainingSettings",
    "WorldSettings",
    "env_overrides",
    "load_settings",
]
