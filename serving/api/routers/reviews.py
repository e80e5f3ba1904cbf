"""The review queue, analysts' outcomes and their history (``review`` scope; ``override`` to decide a
customer outside the queue)."""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query

from fraudgraph.graph import CustomerUpsert
from fraudgraph.redaction import mask_free_text
from fraudgraph.schema import numeric_property
from fraudgraph.timeutil import now_ms

from ..dependencies import Services, customer_or_404, require, services
from ..errors import ERRORS, NOT_FOUND, ApiError, ErrorResponse
from ..properties import as_int, decision, reasons, review_case, review_outcome
from ..schemas import ReviewCase, ReviewEntry, ReviewHistory, ReviewOut, ReviewPage, ReviewRequest
from ..security import Principal

log = logging.getLogger("fraudgraph.api.reviews")
MAX_PAGE = 200  # the OpenAPI bound; api.review_page_max (at most this) is checked per request
router = APIRouter(prefix="/v1/reviews", tags=["reviews"])
NOT_IN_QUEUE: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "the customer is not in the review queue"}
}


@router.get("", response_model=ReviewPage, responses={**ERRORS}, dependencies=[require("review")])
def reviews(
    status: Literal["open", "closed"] = "open",
    offset: int = Query(0, ge=0),
    limit: int = Query(50, ge=1, le=MAX_PAGE),
    svc: Services = Depends(services),
) -> ReviewPage:
    """Customers decided ``review``: open (no outcome yet) or closed; highest score, then value, first."""
    if limit > svc.settings.api.review_page_max:
        raise ApiError(422, "invalid_request", f"limit: at most {svc.settings.api.review_page_max}")
    frame = svc.store.customers_with("decision", "review")
    cases = []
    for r in frame.to_dict("records") if len(frame) else []:
        _, closed = review_case(r)
        if (status == "closed") != closed:
            continue
        cases.append(
            ReviewCase(
                customer_id=r["customer_id"],
                score=numeric_property(r.get("score")),
                lifetime_value=numeric_property(r.get("lifetime_value")),
                reason_codes=reasons(r.get("decision_reasons")),
                scored_as_of=as_int(r.get("scored_as_of")),
                status="closed" if closed else "open",
                outcome=review_outcome(r) if closed else None,
                outcome_at=as_int(r.get("review_outcome_at")) if closed else None,
            )
        )
    cases.sort(key=lambda c: (-(c.score or 0), -(c.lifetime_value or 0), c.customer_id))
    page = cases[offset : offset + limit]
    nxt = offset + limit if offset + limit < len(cases) else None
    return ReviewPage(status=status, total=len(cases), offset=offset, limit=limit, next_offset=nxt, cases=page)


@router.post("/{customer_id}", response_model=ReviewOut, responses={**ERRORS, **NOT_FOUND, **NOT_IN_QUEUE})
def record_review(
    customer_id: str,
    body: ReviewRequest,
    props: dict = Depends(customer_or_404),
    who: Principal = require("review"),
    svc: Services = Depends(services),
) -> ReviewOut:
    """Record the analyst's outcome for a customer in the review queue (any customer with ``override``): it
    closes the case, is appended to the review log with the token's name, the time and the previous
    decision, and is the first label source on the next labels run."""
    if len(body.note) > svc.settings.api.note_max_chars:
        raise ApiError(422, "invalid_request", f"note: at most {svc.settings.api.note_max_chars} characters")
    queued, closed = review_case(props)
    override = not queued or closed
    if override and "override" not in who.scopes:
        raise ApiError(
            409,
            "not_in_queue",
            "the customer is not in the open review queue; recording an outcome for it needs the 'override' scope",
        )
    now, note = now_ms(), mask_free_text(body.note)
    svc.review_log.append(
        customer_id, body.outcome, who.name, now, decision(props), review_outcome(props), override, note
    )
    svc.store.upsert_customers(
        CustomerUpsert.many(
            {
                customer_id: {
                    "review_outcome": body.outcome,
                    "review_outcome_at": now,
                    "review_note": note,
                    "review_actor": who.name,
                }
            }
        )
    )
    log.info(
        "review outcome %s for customer %s by %s%s",
        body.outcome,
        customer_id,
        who.name,
        " (override)" if override else "",
    )
    return ReviewOut(customer_id=customer_id, outcome=body.outcome, outcome_at=now, status="closed")


@router.get(
    "/{customer_id}/history",
    response_model=ReviewHistory,
    responses={**ERRORS, **NOT_FOUND},
    dependencies=[require("review"), Depends(customer_or_404)],
)
def review_history(customer_id: str, svc: Services = Depends(services)) -> ReviewHistory:
    """Every outcome recorded for the customer, oldest first, from the append-only review log."""
    return ReviewHistory(
        customer_id=customer_id, entries=[ReviewEntry(**e) for e in svc.review_log.history(customer_id)]
    )
