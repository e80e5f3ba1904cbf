"""The real-time consumer, online scoring and the internal query API."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from fraudgraph.config.base import Section


class OnlineSettings(Section):
    torch_threads: int = Field(ge=1)


class ConsumerSettings(Section):
    ledger: str | None
    dead_letter: str
    max_batch: int = Field(ge=1)
    poll_timeout_s: float = Field(gt=0)
    metrics_port: int = Field(ge=0, le=65535)
    # How long a source or sink keeps retrying an unreachable broker (restart, network blip) before failing.
    broker_retry_s: float = Field(gt=0)
    # SQS: a received message is hidden from the other consumers this long (the broker's maximum: 12 h)
    sqs_visibility_timeout_s: int = Field(ge=1, le=43200)
    # competing consumers: a lease not renewed for this long is taken over (serving.consumer.partitions)
    lease_s: float = Field(gt=0)
    max_batch_span_s: float = Field(gt=0)
    max_event_bytes: int = Field(ge=256)
    max_clock_skew_s: float | None = Field(gt=0)
    max_event_age_s: float | None = Field(gt=0)
    drift_log: str | None
    link_event_log: str | None
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

    @model_validator(mode="after")
    def _lease_expires_before_redelivery(self) -> ConsumerSettings:
        """A message of a stalled consumer comes back to another only after the stalled one's lease has
        expired, so the other claims the lease (fencing the stalled one off) before it sees the message."""
        longest_poll = min(20, math.ceil(self.poll_timeout_s))
        if self.sqs_visibility_timeout_s <= self.lease_s + longest_poll:
            raise ValueError(
                f"consumer.sqs_visibility_timeout_s ({self.sqs_visibility_timeout_s} s) must exceed "
                f"consumer.lease_s ({self.lease_s:g} s) plus the longest poll ({longest_poll} s)"
            )
        return self


class ReplaySettings(Section):
    """How the main job replays the live stream (docs/consumer.md, "The main job's replay")."""

    consumer_events: int = Field(ge=1)
    chunk_points: int = Field(ge=1)


Scope = Literal["read", "score", "review", "override"]


class TokenSpec(Section):
    """A named API token: the name is what logs and the review log record (never the token)."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+$")
    scopes: list[Scope]


class ApiSettings(Section):
    host: str
    port: int = Field(ge=0, le=65535)
    # bearer token -> {name, scopes} (or a bare list of scopes: named token-<hash prefix>); production
    # reads them from tokens_file (YAML or JSON, same shape)
    tokens: dict[str, TokenSpec | list[Scope]]
    tokens_file: str | None
    # append-only log of review outcomes (SQLite); null: beside a SQLite graph (GRAPH.reviews.db)
    review_log: str | None
    max_body_bytes: int = Field(ge=1024)
    body_timeout_s: float = Field(gt=0)
    docs: bool  # Swagger UI and ReDoc (they load assets from a CDN); /openapi.json always
    max_score_ids: int = Field(ge=1)
    max_neighbourhood_limit: int = Field(ge=1)
    review_page_max: int = Field(ge=1)
    write_scores: bool  # POST /v1/score writes score and decision to the vertex, as the consumer does
    score_concurrency: int = Field(ge=1)
    # requests waiting before a batch starts while another is being scored (1: at once)
    min_batch_while_busy: int = Field(ge=1)
    # worker processes that score the batches (0: in the API process); at most the cores
    score_processes: int = Field(ge=0)
    note_max_chars: int = Field(ge=0)
