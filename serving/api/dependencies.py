"""Shared pieces every router takes as FastAPI dependencies: the services, the caller, a customer."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from fastapi import Depends, Request

from fraudgraph.config import Settings
from fraudgraph.graph import IdentityGraph, customer_properties
from fraudgraph.identity import IdentifierHasher
from fraudgraph.lifecycle.follow import StageFollower
from fraudgraph.ml.artifact import ModelArtifact
from fraudgraph.redaction import id_problem
from fraudgraph.scoring.online import OnlineScorer
from serving.review_log import ReviewLog

from .batching import ScoreBatcher
from .errors import ApiError
from .security import Principal


@dataclass
class Services:
    """What the routers work with; made once by :func:`serving.api.app.create_app`."""

    store: IdentityGraph
    scorer: OnlineScorer
    settings: Settings
    hasher: IdentifierHasher
    review_log: ReviewLog
    batcher: ScoreBatcher
    follower: StageFollower[ModelArtifact] | None = None


async def services(request: Request) -> Services:
    """The services for one request: with a registry follower, the production model as the request
    starts (a promotion reaches requests that start after it; one in flight keeps its model). A
    coroutine, as the dependencies that do not block are: FastAPI runs a plain function on its thread
    pool, a hand-off per dependency per request."""
    svc: Services = request.app.state.services
    if svc.follower is not None:
        _, artifact, changed = svc.follower.take()
        if changed and artifact is not None:  # production is never left empty
            svc.scorer = OnlineScorer(svc.store, artifact, svc.settings)
        return replace(svc)
    return svc


async def caller(request: Request) -> Principal:
    """The caller the guard middleware authenticated (every ``/v1`` route has one)."""
    principal = getattr(request.state, "principal", None)
    if principal is None:  # a /v1 route the middleware did not guard: refuse rather than serve
        raise ApiError(401, "unauthorized", "a bearer token is required", {"WWW-Authenticate": "Bearer"})
    return principal


def require(scope: str) -> Any:
    """A dependency that refuses (403) a caller whose token lacks ``scope``; returns the caller."""

    async def check(principal: Principal = Depends(caller)) -> Principal:
        if scope not in principal.scopes:
            raise ApiError(403, "forbidden", f"the token lacks the {scope!r} scope")
        return principal

    return Depends(check)


def checked_customer_ids(customer_ids: list[str], settings: Settings) -> list[str]:
    """The ids, each checked against the one id rule (:func:`fraudgraph.redaction.id_problem`,
    ``privacy.id_pattern``); a refusal (422) never echoes the value."""
    for i, customer_id in enumerate(customer_ids):
        problem = id_problem(customer_id, settings.privacy.id_pattern)
        if problem:
            where = "customer_id" if len(customer_ids) == 1 else f"customer_ids[{i}]"
            raise ApiError(422, "invalid_request", f"{where}: {problem}")
    return customer_ids


def customer_or_404(customer_id: str, svc: Services = Depends(services)) -> dict[str, Any]:
    checked_customer_ids([customer_id], svc.settings)
    props = customer_properties(svc.store, customer_id)
    if props is None:
        raise ApiError(404, "not_found", "the customer is not in the graph")
    return props
