"""Typed, validated settings loaded from ``conf/default.yaml``.

Precedence (lowest first): the packaged ``conf/default.yaml``, a ``--config``
file (deep-merged), environment overrides ``FRAUDGRAPH_<SECTION>__<KEY>``.
Unknown keys and wrong types fail at start with the dotted key path and the
reason (:class:`ConfigError`).
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
    busy_timeout_ms: int = Field(60000, ge=0)
    cache_size_mb: int = Field(64, ge=1)


class GremlinSettings(_Section):
    traversal_source: str = "g"
    pool_size: int = Field(4, ge=1)
    batch_size: int = Field(500, ge=1)
    max_retries: int = Field(8, ge=0)
    backoff_initial_s: float = Field(0.2, gt=0)
    backoff_max_s: float = Field(10.0, gt=0)
    request_timeout_s: float = Field(120, gt=0)
    summary_properties: list[str] = ["signup_ts", "lifetime_value", "clean_label"]
    iam: bool = False  # Neptune IAM auth: SigV4-sign every WebSocket handshake (fraudgraph.graph.neptune_iam)
    iam_region: str | None = None  # default: AWS_REGION / the AWS config
    # supplied: fraudgraph's edge ids (TinkerGraph, Neptune); engine: the engine's own (JanusGraph refuses
    # user-supplied edge ids), edges merged on label and endpoints
    edge_ids: Literal["supplied", "engine"] = "supplied"


class JanusGraphServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8183, ge=1, le=65535)
    janusgraph_version: str = "1.1.0"
    heap: str = "1g"
    state_dir: str = ".servers/janusgraph-server"
    start_timeout_s: float = Field(180, gt=0)
    quick_jit: bool = True


class GraphSettings(_Section):
    uri: str = "sqlite:///fraudgraph.db"
    batch_size: int = Field(5000, ge=1)
    neighbourhood_fanout_cap: int = Field(20, ge=1)
    sqlite: SqliteSettings = SqliteSettings()
    gremlin: GremlinSettings = GremlinSettings()


class PrivacySettings(_Section):
    pii_key: str | None = None
    pii_key_file: str | None = None
    hash_hex_chars: int = Field(32, ge=16, le=64)
    allow_demo_key: bool = False


class GremlinServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8182, ge=1, le=65535)
    tinkerpop_version: str = "3.7.3"
    heap: str = "1g"
    state_dir: str = ".servers/gremlin-server"
    persist: bool = True
    start_timeout_s: float = Field(180, gt=0)
    quick_jit: bool = True
    # TinkerGraph's default vertex-property cardinality; "set" behaves as Neptune does
    vertex_property_cardinality: Literal["single", "set"] = "single"


class LegitWorldSettings(_Section):
    household_share: float = Field(0.25, ge=0, le=1)
    extra_device_rate: float = Field(0.35, ge=0, le=1)
    carrier_ip_share: float = Field(0.55, ge=0, le=1)
    carrier_ips: int = Field(400, ge=1)
    public_wifi_ips: int = Field(60, ge=1)
    public_wifi_share: float = Field(0.08, ge=0, le=1)
    traveller_share: float = Field(0.03, ge=0, le=1)
    card_rate: float = Field(0.7, ge=0, le=1)
    shared_card_in_household: float = Field(0.3, ge=0, le=1)
    email_change_rate: float = Field(0.03, ge=0, le=1)
    logins_per_month: float = Field(1.0, ge=0)
    payments_per_month: float = Field(0.4, ge=0)
    lifetime_value_median: float = Field(60.0, gt=0)
    card_at_signup_share: float = Field(0.35, ge=0, le=1)
    first_payment_soon_share: float = Field(0.4, ge=0, le=1)
    joint_signup_share: float = Field(0.5, ge=0, le=1)
    churn_rate: float = Field(0.3, ge=0, le=1)
    office_ips: int = Field(30, ge=1)
    office_share: float = Field(0.08, ge=0, le=1)
    vpn_share: float = Field(0.04, ge=0, le=1)
    new_phone_share: float = Field(0.06, ge=0, le=1)


class FraudWorldSettings(_Section):
    prevalence: float = Field(0.02, ge=0, le=0.5)
    ring_share: float = Field(0.6, ge=0, le=1)
    takeover_share: float = Field(0.2, ge=0, le=1)
    ring_size_mean: int = Field(12, ge=2)
    ring_generations: int = Field(3, ge=1)
    ring_identifier_reuse: float = Field(0.5, ge=0, le=1)
    ring_devices: int = Field(4, ge=1)
    ring_cards: int = Field(4, ge=1)
    takeover_min_account_age_days: float = Field(60, ge=0)
    card_at_signup_share: float = Field(0.7, ge=0, le=1)
    carrier_ip_share: float = Field(0.35, ge=0, le=1)
    public_wifi_share: float = Field(0.1, ge=0, le=1)
    office_ip_share: float = Field(0.05, ge=0, le=1)
    sleeper_share: float = Field(0.25, ge=0, le=1)
    sleeper_days: list[float] = [10, 60]
    ring_signup_spread_days: float = Field(14, gt=0)
    stolen_card_share: float = Field(0.5, ge=0, le=1)
    resold_device_share: float = Field(0.3, ge=0, le=1)


class BlockingSettings(_Section):
    detect_rate: dict[Literal["ring", "account_takeover", "synthetic_identity"], float] = {
        "ring": 0.65,
        "account_takeover": 0.5,
        "synthetic_identity": 0.35,
    }
    block_delay_median_days: float = Field(12, gt=0)
    block_delay_sigma: float = Field(0.8, ge=0)
    manual_block_share: float = Field(0.4, ge=0, le=1)
    fraud_appeal_rate: float = Field(0.05, ge=0, le=1)
    false_block_rate: float = Field(0.006, ge=0, le=1)
    false_block_appeal_rate: float = Field(0.8, ge=0, le=1)
    appeal_delay_median_days: float = Field(2, gt=0)
    unblock_delay_days: float = Field(3, ge=0)


class WorldSettings(_Section):
    customers: int = Field(20000, ge=10)
    seed: int = 42
    start: str = "2025-01-01T00:00:00Z"
    history_days: float = Field(365, gt=0)
    live_days: float = Field(30, ge=0)
    chunk_customers: int = Field(20000, ge=100)
    workers: int = Field(2, ge=1)
    legit: LegitWorldSettings = LegitWorldSettings()
    fraud: FraudWorldSettings = FraudWorldSettings()
    blocking: BlockingSettings = BlockingSettings()


class SparkSettings(_Section):
    master: str = "local[*]"
    app_name: str = "fraudgraph-etl"
    driver_memory: str = "2g"
    shuffle_partitions: int = Field(4, ge=1)
    ui_enabled: bool = False
    bind_address: str = "127.0.0.1"
    driver_java_options: str = "-XX:+UseSerialGC"
    conf: dict[str, str | int | float | bool] = {}


class EtlSettings(_Section):
    write_partitions: int = Field(2, ge=1)
    write_batch_size: int = Field(5000, ge=1)
    # per table: contract column -> the team's own column name (docs/input-contract.md)
    columns: dict[str, dict[str, str]] = {}

    @field_validator("columns")
    @classmethod
    def _known_tables(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        unknown = sorted(set(value) - {"events", "customers", "blocks", "appeals"})
        if unknown:
            raise ValueError(f"unknown tables {unknown}: expected events, customers, blocks, appeals")
        return value


class SharedCardRule(_Section):
    enabled: bool = True
    min_fraudsters: int = Field(2, ge=1)
    max_card_degree: int = Field(20, ge=2)
    max_first_use_gap_days: float = Field(30, gt=0)
    max_use_after_fraudsters_days: float = Field(30, gt=0)
    confidence: float = Field(0.9, ge=0, le=1)


class ComponentRule(_Section):
    enabled: bool = True
    kinds: list[Literal["device", "ip", "email", "card"]] = ["device", "card"]
    max_identifier_degree: int = Field(20, ge=2)
    max_first_use_gap_days: float = Field(30, gt=0)
    max_use_after_fraudsters_days: float = Field(30, gt=0)
    min_size: int = Field(4, ge=2)
    min_fraudsters: int = Field(2, ge=1)
    min_fraud_share: float = Field(0.5, ge=0, le=1)
    min_direct_fraudsters: int = Field(2, ge=0)
    confidence: float = Field(0.9, ge=0, le=1)


class BurstRule(_Section):
    enabled: bool = True
    min_accounts: int = Field(3, ge=2)
    window_hours: float = Field(72, gt=0)
    min_fraudsters: int = Field(1, ge=0)
    max_block_after_signup_days: float = Field(45, gt=0)
    confidence: float = Field(0.85, ge=0, le=1)


class HeuristicSettings(_Section):
    shared_card_with_fraudsters: SharedCardRule = SharedCardRule()
    fraud_dominated_component: ComponentRule = ComponentRule()
    device_signup_burst: BurstRule = BurstRule()


class LabelConfidence(_Section):
    analyst: float = Field(1.0, ge=0, le=1)
    block_matured: float = Field(0.9, ge=0, le=1)
    unblocked_after_appeal: float = Field(0.9, ge=0, le=1)
    appeal_upheld: float = Field(0.95, ge=0, le=1)
    matured_no_block: float = Field(0.8, ge=0, le=1)


class LabelSettings(_Section):
    maturity_days: float = Field(30, ge=0)
    appeal_window_days: float = Field(14, ge=0)
    confidence: LabelConfidence = LabelConfidence()
    heuristics: HeuristicSettings = HeuristicSettings()


class SplitSettings(_Section):
    val_days: float = Field(120, gt=0)
    test_days: float = Field(60, gt=0)


class GbdtSettings(_Section):
    max_iter: int = Field(300, ge=1)
    learning_rate: float = Field(0.1, gt=0)
    max_leaf_nodes: int = Field(31, ge=2)


class ExampleSettings(_Section):
    max_per_customer: int = Field(2, ge=1)
    legit_customers_per_split: int = Field(6000, ge=1)
    fraud_window_days: float = Field(45, gt=0)


class TrainingSettings(_Section):
    seed: int = 7
    hidden_dim: int = Field(64, ge=4)
    edge_hidden_dim: int = Field(16, ge=1)
    layers: int = Field(2, ge=1, le=4)
    dropout: float = Field(0.2, ge=0, lt=1)
    learning_rate: float = Field(0.005, gt=0)
    weight_decay: float = Field(0.0005, ge=0)
    max_epochs: int = Field(80, ge=1)
    patience: int = Field(12, ge=1)
    min_epochs: int = Field(25, ge=1)
    mode: Literal["auto", "full", "minibatch"] = "auto"
    full_graph_max_edges: int = Field(4_000_000, ge=0)
    batch_size: int = Field(1024, ge=1)
    fanouts: list[int] = [15, 10]
    split: SplitSettings = SplitSettings()
    examples: ExampleSettings = ExampleSettings()
    min_positives: int = Field(20, ge=1)
    bootstrap_rounds: int = Field(200, ge=0)
    pos_weight_max: float = Field(20.0, ge=1)
    threshold_policy: Literal["false_flag_budget", "target_precision"] = "false_flag_budget"
    false_flags_per_10k: float = Field(20.0, ge=0, le=10_000)
    target_precision: float = Field(0.85, gt=0, lt=1)
    gbdt: GbdtSettings = GbdtSettings()
    threads: int = Field(2, ge=1)
    refit_on_all_labels: bool = True


class DayOneRuleSettings(_Section):
    max_shared_degree: int = Field(20, ge=2)
    burst_accounts: int = Field(3, ge=2)
    burst_window_days: float = Field(3, gt=0)
    card_after_signup_hours: float = Field(6, gt=0)


class RuleSettings(_Section):
    threshold: float | None = Field(None, ge=0, le=1)
    value_cut: float = Field(100.0, ge=0)
    young_account_days: float = Field(7, ge=0)
    hub_degree: int = Field(100, ge=2)
    day_one: DayOneRuleSettings = DayOneRuleSettings()


class OnlineSettings(_Section):
    torch_threads: int = Field(1, ge=1)


class ConsumerSettings(_Section):
    ledger: str | None = None
    dead_letter: str = "consumer-rejects.jsonl"
    max_batch: int = Field(1000, ge=1)
    poll_timeout_s: float = Field(0.5, gt=0)
    metrics_port: int = Field(0, ge=0, le=65535)
    # How long a source or sink keeps retrying an unreachable broker (restart, network blip) before failing.
    broker_retry_s: float = Field(120, gt=0)
    max_batch_span_s: float = Field(5.0, gt=0)
    max_event_bytes: int = Field(65536, ge=256)
    max_clock_skew_s: float | None = Field(300, gt=0)
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
    ] = ["signup", "login_new_identifier", "add_card", "change_email", "payment"]


Scope = Literal["read", "score", "review", "override"]


class TokenSpec(_Section):
    """A named API token: the name is what logs and the review log record (never the token)."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+$")
    scopes: list[Scope]


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # bearer token -> {name, scopes} (or a bare list of scopes: named token-<hash prefix>); production
    # reads them from tokens_file (YAML or JSON, same shape)
    tokens: dict[str, TokenSpec | list[Scope]] = {}
    tokens_file: str | None = None
    # append-only log of review outcomes (SQLite); null: beside a SQLite graph (GRAPH.reviews.db)
    review_log: str | None = None
    max_body_bytes: int = Field(1_048_576, ge=1024)
    docs: bool = False  # Swagger UI and ReDoc (they load assets from a CDN); /openapi.json always
    max_score_ids: int = Field(500, ge=1)
    max_neighbourhood_limit: int = Field(500, ge=1)
    review_page_max: int = Field(200, ge=1)
    write_scores: bool = True  # POST /v1/score writes score and decision to the vertex, as the consumer does
    score_concurrency: int = Field(1, ge=1)
    note_max_chars: int = Field(2000, ge=0)


class KafkaServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(9092, ge=1, le=65535)
    controller_port: int = Field(9093, ge=1, le=65535)
    kafka_version: str = "4.1.1"
    heap: str = "512m"
    state_dir: str = ".servers/kafka"
    start_timeout_s: float = Field(120, gt=0)


class SqsServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(9324, ge=1, le=65535)
    elasticmq_version: str = "1.6.9"
    heap: str = "256m"
    state_dir: str = ".servers/elasticmq"
    start_timeout_s: float = Field(120, gt=0)
    persist: bool = True


class LoggingSettings(_Section):
    level: str = "INFO"


class Settings(_Section):
    """Every tunable of fraudgraph; one attribute per section of ``conf/default.yaml``."""

    graph: GraphSettings = GraphSettings()
    privacy: PrivacySettings = PrivacySettings()
    gremlin_server: GremlinServerSettings = GremlinServerSettings()
    janusgraph_server: JanusGraphServerSettings = JanusGraphServerSettings()
    world: WorldSettings = WorldSettings()
    spark: SparkSettings = SparkSettings()
    etl: EtlSettings = EtlSettings()
    labels: LabelSettings = LabelSettings()
    training: TrainingSettings = TrainingSettings()
    rules: RuleSettings = RuleSettings()
    online: OnlineSettings = OnlineSettings()
    consumer: ConsumerSettings = ConsumerSettings()
    api: ApiSettings = ApiSettings()
    kafka_server: KafkaServerSettings = KafkaServerSettings()
    sqs_server: SqsServerSettings = SqsServerSettings()
    logging: LoggingSettings = LoggingSettings()


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
    data = _read_yaml(DEFAULT_CONFIG) if DEFAULT_CONFIG.exists() else {}
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
