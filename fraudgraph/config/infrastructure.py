"""Where fraudgraph keeps and moves data: the identity graph's stores, the PII key, Spark and the
ETL, the local servers, logging."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from fraudgraph.config.base import Section


class SqliteSettings(Section):
    busy_timeout_ms: int = Field(ge=0)
    cache_size_mb: int = Field(ge=1)


class GremlinSettings(Section):
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


class LocalServerSettings(Section):
    """What every local Java server (localservers) is started with: loopback address, JVM heap, the
    folder of its state, pid and log, and how long a start may take."""

    host: str
    port: int = Field(ge=1, le=65535)
    heap: str
    state_dir: str
    start_timeout_s: float = Field(gt=0)


class JanusGraphServerSettings(LocalServerSettings):
    janusgraph_version: str
    quick_jit: bool
    # inmemory: lost at stop; cql: the local Cassandra (cassandra_server) in keyspace cql_keyspace
    storage: Literal["inmemory", "cql"]
    cql_keyspace: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")


class CassandraServerSettings(LocalServerSettings):
    """A single-node Apache Cassandra on loopback: ``port`` is the CQL (native transport) port."""

    storage_port: int = Field(ge=1, le=65535)
    cassandra_version: str
    quick_jit: bool


class GraphSettings(Section):
    uri: str
    batch_size: int = Field(ge=1)
    neighbourhood_fanout_cap: int = Field(ge=1)
    sqlite: SqliteSettings
    gremlin: GremlinSettings


class PrivacySettings(Section):
    pii_key: str | None
    pii_key_file: str | None
    hash_hex_chars: int = Field(ge=16, le=64)
    allow_demo_key: bool
    id_pattern: str

    @field_validator("id_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression ({exc})") from None
        return value


class GremlinServerSettings(LocalServerSettings):
    tinkerpop_version: str
    persist: bool
    quick_jit: bool
    # TinkerGraph's default vertex-property cardinality; "set" behaves as Neptune does
    vertex_property_cardinality: Literal["single", "set"]


class SparkSettings(Section):
    master: str
    app_name: str
    driver_memory: str
    shuffle_partitions: int = Field(ge=1)
    ui_enabled: bool
    bind_address: str
    driver_java_options: str
    conf: dict[str, str | int | float | bool]


class EtlSettings(Section):
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


class KafkaServerSettings(LocalServerSettings):
    controller_port: int = Field(ge=1, le=65535)
    kafka_version: str


class SqsServerSettings(LocalServerSettings):
    elasticmq_version: str
    persist: bool


class LoggingSettings(Section):
    level: str
