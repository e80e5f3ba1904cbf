"""The internal query API and the analyst review console (FastAPI), wired from its routers.

``fraudgraph api --graph URI --model MODEL_DIR [--host 127.0.0.1 --port 8080]``

Endpoints (bearer token scopes in brackets):

- ``GET /v1/customers/{id}`` [read]: identity, label, latest score and decision.
- ``GET /v1/customers/{id}/neighbourhood?hops=1|2&limit=N`` [read]: customers sharing identifiers,
  through which identifiers, with fan-out caps reported.
- ``GET /v1/lookup?email=|ip=|device_id=|card_fingerprint=`` [read]: a raw identifier, hashed with
  the graph's key, to its customers. The raw value is never stored, echoed or logged.
- ``POST /v1/score`` [score]: online scores and decisions, the consumer's code path.
- ``GET /v1/reviews``, ``POST /v1/reviews/{id}`` [review; override outside the queue] and
  ``GET /v1/reviews/{id}/history`` [review]: the queue, outcomes and their append-only log.
- ``/healthz``, ``/readyz``, ``/metrics`` (no token), ``/console`` (its API calls carry the
  analyst's token).

Errors are ``{"error": {"code": ..., "message": ...}}`` with the HTTP status.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Histogram

from fraudgraph.config import Settings
from fraudgraph.graph import CustomerUpsert, IdentityGraph
from fraudgraph.identity import IdentifierHasher
from fraudgraph.lifecycle.follow import StageFollower
from fraudgraph.ml.artifact import ModelArtifact
from fraudgraph.scoring.online import OnlineResult, OnlineScorer
from fraudgraph.scoring.rules import decision_properties
from serving.review_log import ReviewLog, review_log_path

from .batching import ScoreBatcher, ScoreFunction
from .dependencies import Services
from .errors import ErrorResponse, install_error_handlers
from .routers import customers, ops, reviews, scoring
from .score_processes import ScoringProcesses
from .security import GuardMiddleware, load_tokens

log = logging.getLogger("fraudgraph.api")


def create_app(
    store: IdentityGraph,
    scorer: OnlineScorer,
    settings: Settings,
    review_log: ReviewLog | None = None,
    follower: StageFollower[ModelArtifact] | None = None,
) -> FastAPI:
    """The API over an open store and a loaded model. The caller owns (and closes) the store;
    ``review_log`` defaults to ``api.review_log`` (beside a SQLite graph when unset); ``follower``: the
    registry's production model, switched to between requests when it moves."""
    cfg = settings.api
    tokens = load_tokens(cfg)
    if not tokens:
        log.warning("no API tokens configured (api.tokens / api.tokens_file): every /v1 call will get 401")
    registry = CollectorRegistry()
    review_log = review_log or ReviewLog(review_log_path(store, cfg.review_log))
    # last of what can refuse the settings: started workers are only stopped by the app's shutdown
    batcher, processes = _score_batcher(store, scorer, lambda: app.state.services.scorer, settings, registry)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        batcher.close()
        if processes is not None:
            processes.close()

    app = FastAPI(
        lifespan=lifespan,
        title="fraudgraph internal API",
        version="1",
        description=__doc__.split("\n\n")[0],
        docs_url="/docs" if cfg.docs else None,
        redoc_url="/redoc" if cfg.docs else None,
        responses={422: {"model": ErrorResponse, "description": "invalid request"}},
    )
    app.state.scoring_processes = processes
    app.state.services = Services(
        store,
        scorer,
        settings,
        IdentifierHasher.from_settings(settings.privacy),
        review_log,
        batcher,
        follower,
    )
    install_error_handlers(app)
    _install_observability(app, registry)
    for router in (ops.router, customers.router, scoring.router, reviews.router):
        app.include_router(router)
    # outermost: auth and body limits before anything reads the request, security headers on every response
    app.add_middleware(
        GuardMiddleware, tokens=tokens, max_body_bytes=cfg.max_body_bytes, body_timeout_s=cfg.body_timeout_s
    )
    return app


def _score_batcher(
    store: IdentityGraph,
    scorer: OnlineScorer,
    current: Callable[[], OnlineScorer],
    settings: Settings,
    registry: CollectorRegistry,
) -> tuple[ScoreBatcher, ScoringProcesses | None]:
    """The batcher of ``POST /v1/score``, scoring with ``current()`` (looked up per batch: the production
    model as the batch starts), in the API process or in ``api.score_processes`` workers started with
    ``scorer``'s model."""
    cfg = settings.api
    processes = (
        ScoringProcesses(store.uri, settings, cfg.score_processes, scorer.artifact.folder)
        if cfg.score_processes
        else None
    )

    def score_function() -> ScoreFunction:
        now = current()
        return processes.scorer(now.artifact.folder) if processes is not None else now.score_many

    batcher = ScoreBatcher(
        score_function,
        _score_writer(store) if cfg.write_scores else None,
        max_ids=cfg.max_score_ids,
        workers=cfg.score_processes or cfg.score_concurrency,
        min_batch_while_busy=cfg.min_batch_while_busy,
        registry=registry,
    )
    return batcher, processes


def _score_writer(store: IdentityGraph) -> Callable[[list[OnlineResult]], None]:
    """Writes a scoring batch's scores and decisions to its customers' vertices, as the consumer does."""

    def write(results: list[OnlineResult]) -> None:
        store.upsert_customers(
            CustomerUpsert.many(
                {
                    r.customer_id: decision_properties(
                        r.score, r.decision.decision, list(r.decision.reason_codes), r.model_version, r.as_of_ms
                    )
                    for r in results
                }
            )
        )

    return write


def _install_observability(app: FastAPI, registry: CollectorRegistry) -> None:
    """Request counts and latency per route template (Prometheus) and one log line per request."""
    app.state.registry = registry
    requests = Counter("fraudgraph_api_requests_total", "API requests", ["route", "status"], registry=registry)
    latency = Histogram(
        "fraudgraph_api_request_seconds",
        "API request latency",
        ["route"],
        registry=registry,
        buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    )

    @app.middleware("http")
    async def observe(request: Request, call_next):
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:  # noqa: BLE001 - logged and answered as a structured 500
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            response = JSONResponse({"error": {"code": "internal", "message": "internal error"}}, status_code=500)
        template = getattr(request.scope.get("route"), "path", "unmatched")
        requests.labels(template, str(response.status_code)).inc()
        latency.labels(template).observe(time.perf_counter() - started)
        # the route template, never the path or query: ids and a lookup's raw identifier stay out of logs
        log.info(
            "%s %s %d %.1fms", request.method, template, response.status_code, (time.perf_counter() - started) * 1000
        )
        return response
