"""Online scoring through the consumer's code path (``score`` scope)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends

from ..dependencies import Services, checked_customer_ids, require, services
from ..errors import ERRORS, ApiError
from ..schemas import ScoreOut, ScoreRequest, ScoreResponse

router = APIRouter(prefix="/v1", tags=["scoring"], dependencies=[require("score")])


@router.post("/score", response_model=ScoreResponse, responses={**ERRORS})
async def score(body: ScoreRequest, svc: Services = Depends(services)) -> ScoreResponse:
    """Score and decide customers now, online, through the consumer's code path: with the requests that
    arrived while the batch before was scored, in one subgraph (:mod:`serving.api.batching`). A
    coroutine: it waits for its batch without holding a thread."""
    cfg = svc.settings.api
    ids = list(dict.fromkeys(body.customer_ids))
    if len(ids) > cfg.max_score_ids:
        raise ApiError(422, "invalid_request", f"customer_ids: at most {cfg.max_score_ids} per request")
    checked_customer_ids(ids, svc.settings)
    # with the requests queued beside it; scores written with the batch
    results = await asyncio.wrap_future(svc.batcher.submit(ids))
    out = [
        ScoreOut(
            customer_id=c,
            score=r.score,
            decision=r.decision.decision,
            reason_codes=list(r.decision.reason_codes),
            reasons=list(r.decision.reasons),
            model_version=r.model_version,
            as_of=r.as_of_ms,
        )
        for c, r in results.items()
    ]
    return ScoreResponse(results=out, not_found=[c for c in ids if c not in results])
