"""Typed, validated settings loaded from ``conf/default.yaml``.

Precedence (lowest first): the packaged ``conf/default.yaml``, a ``--config``
file (deep-merged), environment overrides ``FRAUDGRAPH_<SECTION>__<KEY>``.
Unknown keys and wrong types fail at start with the dotted key path and the
reason (:class:`ConfigError`).

Every default lives in ``conf/default.yaml`` and only there: the classes below
state types and bounds, so a key missing from the file fails at start too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_PREFIX = "FRAUDGRAPH_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# conf/ sits beside the package in a checkout; FRAUDGRAPH_CONF_DIR points elsewhere.
CONF_DIR = Path(os.environ.get("FRAUDGRAPH_CONF_DIR", PROJECT_ROOT / "conf"))
DEFAULT_CONFIG = CONF_DIR / "default.yaml"


class ConfigError(ValueError):
    """A configuration value is unknown or invalid; the message names the key path."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SqliteSettings(_Section):
    busy_timeout_ms: int = Field(ge=0)
    cache_size_mb: int = Field(ge=1)


class GremlinSettings(_Section):
    traversal_source: str
    pool_size: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    max_retries: int = Field(ge=0)
    backoff_initial_s: float = Field(gt=0)
    backoff_max_s: float = Field(gt=0)
    request_timeout_s: float = Field(gt=0)
    summary_properties: list[str]
    iam: bool  # Neptune IAM auth: SigV4-sign every WebSocket handshake (fraudgraph.graph.neptune_iam)
    iam_region: str | None  # default: AWS_REGION / the AWS config
    # supplied: fraudgraph's edge ids (TinkerGraph, Neptune); engine: the engine's own (JanusGraph refuses
    # user-supplied edge ids), edges merged on label and endpoints
    edge_ids: Literal["supplied", "engine"]


class JanusGraphServerSettings(_Section):
    host: str
    port: int = Field(ge=1, le=65535)
    janusgraph_version: str
    heap: str
    state_dir: str
    start_timeout_s: float = Field(gt=0)
    quick_jit: bool


class GraphSettings(_Section):
    uri: str
    batch_size: int = Field(ge=1)
    neighbourhood_fanout_cap: int = Field(ge=1)
    sqlite: SqliteSettings
    gremlin: GremlinSettings


class PrivacySettings(_Section):
    pii_key: str | None
    pii_key_file: str | None
    hash_hex_chars: int = Field(ge=16, le=64)
    allow_demo_key: bool


class GremlinServerSettings(_Section):
    host: str
    port: int = Field(ge=1, le=65535)
    tinkerpop_version: str
    heap: str
    state_dir: str
    persist: bool
    start_timeout_s: float = Field(gt=0)
    quick_jit: bool
    # TinkerGraph's default vertex-property cardinality; "set" behaves as Neptune does
    vertex_property_cardinality: Literal["single", "set"]


class LegitWorldSettings(_Section):
    household_share: float = Field(ge=0, le=1)
    extra_device_rate: float = Field(ge=0, le=1)
    carrier_ip_share: float = Field(ge=0, le=1)
    carrier_ips: int = Field(ge=1)
    public_wifi_ips: int = Field(ge=1)
    public_wifi_share: float = Field(ge=0, le=1)
    traveller_share: float = Field(ge=0, le=1)
    card_rate: float = Field(ge=0, le=1)
    shared_card_in_household: float = Field(ge=0, le=1)
    email_change_rate: float = Field(ge=0, le=1)
    logins_per_month: float = Field(ge=0)
    payments_per_month: float = Field(ge=0)
    lifetime_value_median: float = Field(gt=0)
    card_at_signup_share: float = Field(ge=0, le=1)
    first_payment_soon_share: float = Field(ge=0, le=1)
    joint_signup_share: float = Field(ge=0, le=1)
    churn_rate: float = Field(ge=0, le=1)
    office_ips: int = Field(ge=1)
    office_share: float = Field(ge=0, le=1)
    vpn_share: float = Field(ge=0, le=1)
    new_phone_share: float = Field(ge=0, le=1)


class FraudWorldSettings(_Section):
    prevalence: float = Field(ge=0, le=0.5)
    ring_share: float = Field(ge=0, le=1)
    takeover_share: float = Field(ge=0, le=1)
    ring_size_mean: int = Field(ge=2)
    ring_generations: int = Field(ge=1)
    ring_identifier_reuse: float = Field(ge=0, le=1)
    ring_devices: int = Field(ge=1)
    ring_cards: int = Field(ge=1)
    takeover_min_account_age_days: float = Field(ge=0)
    card_at_signup_share: float = Field(ge=0, le=1)
    carrier_ip_share: float = Field(ge=0, le=1)
    public_wifi_share: float = Field(ge=0, le=1)
    office_ip_share: float = Field(ge=0, le=1)
    sleeper_share: float = Field(ge=0, le=1)
    sleeper_days: list[float]
    ring_signup_spread_days: float = Field(gt=0)
    stolen_card_share: float = Field(ge=0, le=1)
    resold_device_share: float = Field(ge=0, le=1)


class BlockingSettings(_Section):
    detect_rate: dict[Literal["ring", "account_takeover", "synthetic_identity"], float]
    block_delay_median_days: float = Field(gt=0)
    block_delay_sigma: float = Field(ge=0)
    manual_block_share: float = Field(ge=0, le=1)
    fraud_appeal_rate: float = Field(ge=0, le=1)
    false_block_rate: float = Field(ge=0, le=1)
    false_block_appeal_rate: float = Field(ge=0, le=1)
    appeal_delay_median_days: float = Field(gt=0)
    unblock_delay_days: float = Field(ge=0)


class WorldSettings(_Section):
    customers: int = Field(ge=10)
    seed: int
    start: str
    history_days: float = Field(gt=0)
    live_days: float = Field(ge=0)
    chunk_customers: int = Field(ge=100)
    workers: int = Field(ge=1)
    legit: LegitWorldSettings
    fraud: FraudWorldSettings
    blocking: BlockingSettings


class SparkSettings(_Section):
    master: str
    app_name: str
    driver_memory: str
    shuffle_partitions: int = Field(ge=1)
    ui_enabled: bool
    bind_address: str
    driver_java_options: str
    conf: dict[str, str | int | float | bool]


class EtlSettings(_Section):
    write_partitions: int = Field(ge=1)
    write_batch_size: int = Field(ge=1)
    # per table: contract column -> the team's own column name (docs/input-contract.md)
    columns: dict[str, dict[str, str]]

    @field_validator("columns")
    @classmethod
    def _known_tables(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        unknown = sorted(set(value) - {"events", "customers", "blocks", "appeals"})
        if unknown:
            raise ValueError(f"unknown tables {unknown}: expected events, customers, blocks, appeals")
        return value


class SharedCardRule(_Section):
    enabled: bool
    min_fraudsters: int = Field(ge=1)
    max_card_degree: int = Field(ge=2)
    max_first_use_gap_days: float = Field(gt=0)
    max_use_after_fraudsters_days: float = Field(gt=0)
    confidence: float = Field(ge=0, le=1)


class ComponentRule(_Section):
    enabled: bool
    kinds: list[Literal["device", "ip", "email", "card"]]
    max_identifier_degree: int = Field(ge=2)
    max_first_use_gap_days: float = Field(gt=0)
    max_use_after_fraudsters_days: float = Field(gt=0)
    min_size: int = Field(ge=2)
    min_fraudsters: int = Field(ge=1)
    min_fraud_share: float = Field(ge=0, le=1)
    min_direct_fraudsters: int = Field(ge=0)
    confidence: float = Field(ge=0, le=1)


class BurstRule(_Section):
    enabled: bool
    min_accounts: int = Field(ge=2)
    window_hours: float = Field(gt=0)
    min_fraudsters: int = Field(ge=0)
    max_block_after_signup_days: float = Field(gt=0)
    confidence: float = Field(ge=0, le=1)


class HeuristicSettings(_Section):
    shared_card_with_fraudsters: SharedCardRule
    fraud_dominated_component: ComponentRule
    device_signup_burst: BurstRule


class LabelConfidence(_Section):
    analyst: float = Field(ge=0, le=1)
    block_matured: float = Field(ge=0, le=1)
    unblocked_after_appeal: float = Field(ge=0, le=1)
    appeal_upheld: float = Field(ge=0, le=1)
    matured_no_block: float = Field(ge=0, le=1)


class LabelSettings(_Section):
    maturity_days: float = Field(ge=0)
    appeal_window_days: float = Field(ge=0)
    confidence: LabelConfidence
    heuristics: HeuristicSettings


class SplitSettings(_Section):
    val_days: float = Field(gt=0)
    test_days: float = Field(gt=0)


class GbdtSettings(_Section):
    max_iter: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    max_leaf_nodes: int = Field(ge=2)


class ExampleSettings(_Section):
    max_per_customer: int = Field(ge=1)
    legit_customers_per_split: int = Field(ge=1)
    fraud_window_days: float = Field(gt=0)


class TrainingSettings(_Section):
    seed: int
    hidden_dim: int = Field(ge=4)
    edge_hidden_dim: int = Field(ge=1)
    layers: int = Field(ge=1, le=4)
    dropout: float = Field(ge=0, lt=1)
    learning_rate: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    max_epochs: int = Field(ge=1)
    patience: int = Field(ge=1)
    min_epochs: int = Field(ge=1)
    mode: Literal["auto", "full", "minibatch"]
    full_graph_max_edges: int = Field(ge=0)
    batch_size: int = Field(ge=1)
    fanouts: list[int]
    split: SplitSettings
    examples: ExampleSettings
    min_positives: int = Field(ge=1)
    bootstrap_rounds: int = Field(ge=0)
    pos_weight_max: float = Field(ge=1)
    threshold_policy: Literal["false_flag_budget", "target_precision"]
    false_flags_per_10k: float = Field(ge=0, le=10_000)
    target_precision: float = Field(gt=0, lt=1)
    gbdt: GbdtSettings
    threads: int = Field(ge=1)
    refit_on_all_labels: bool


class DayOneRuleSettings(_Section):
    max_shared_degree: int = Field(ge=2)
    burst_accounts: int = Field(ge=2)
    burst_window_days: float = Field(gt=0)
    card_after_signup_hours: float = Field(gt=0)


class RuleSettings(_Section):
    threshold: float | None = Field(ge=0, le=1)
    value_cut: float = Field(ge=0)
    young_account_days: float = Field(ge=0)
    hub_degree: int = Field(ge=2)
    day_one: DayOneRuleSettings


class OnlineSettings(_Section):
    torch_threads: int = Field(ge=1)


class ConsumerSettings(_Section):
    ledger: str | None
    dead_letter: str
    max_batch: int = Field(ge=1)
    poll_timeout_s: float = Field(gt=0)
    metrics_port: int = Field(ge=0, le=65535)
    # How long a source or sink keeps retrying an unreachable broker (restart, network blip) before failing.
    broker_retry_s: float = Field(gt=0)
    max_batch_span_s: float = Field(gt=0)
    max_event_bytes: int = Field(ge=256)
    max_clock_skew_s: float | None = Field(gt=0)
    score_on: list[
        Literal[
            "signup",
            "login",
            "login_new_identifier",
            "payment",
            "add_card",
            "change_email",
            "block",
            "unblock",
            "appeal",
        ]
    ]


Scope = Literal["read", "score", "review", "override"]


class TokenSpec(_Section):
    """A named API token: the name is what logs and the review log record (never the token)."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+$")
    scopes: list[Scope]


class ApiSettings(_Section):
    host: str
    port: int = Field(ge=0, le=65535)
    # bearer token -> {name, scopes} (or a bare list of scopes: named token-<hash prefix>); production
    # reads them from tokens_file (YAML or JSON, same shape)
    tokens: dict[str, TokenSpec | list[Scope]]
    tokens_file: str | None
    # append-only log of review outcomes (SQLite); null: beside a SQLite graph (GRAPH.reviews.db)
    review_log: str | None
    max_body_bytes: int = Field(ge=1024)
    docs: bool  # Swagger UI and ReDoc (they load assets from a CDN); /openapi.json always
    max_score_ids: int = Field(ge=1)
    max_neighbourhood_limit: int = Field(ge=1)
    review_page_max: int = Field(ge=1)
    write_scores: bool  # POST /v1/score writes score and decision to the vertex, as the consumer does
    score_concurrency: int = Field(ge=1)
    note_max_chars: int = Field(ge=0)


class KafkaServerSettings(_Section):
    host: str
    port: int = Field(ge=1, le=65535)
    controller_port: int = Field(ge=1, le=65535)
    kafka_version: str
    heap: str
    state_dir: str
    start_timeout_s: float = Field(gt=0)


class SqsServerSettings(_Section):
    host: str
    port: int = Field(ge=1, le=65535)
    elasticmq_version: str
    heap: str
    state_dir: str
    start_timeout_s: float = Field(gt=0)
    persist: bool


class LoggingSettings(_Section):
    level: str


class Settings(_Section):
    """Every tunable of fraudgraph; one attribute per section of ``conf/default.yaml``."""

    graph: GraphSettings
    privacy: PrivacySettings
    gremlin_server: GremlinServerSettings
    janusgraph_server: JanusGraphServerSettings
    world: WorldSettings
    spark: SparkSettings
    etl: EtlSettings
    labels: LabelSettings
    training: TrainingSettings
    rules: RuleSettings
    online: OnlineSettings
    consumer: ConsumerSettings
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
