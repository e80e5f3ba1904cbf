"""Customers: identity, neighbourhood and lookup by raw identifier (``read`` scope)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from fraudgraph.identity import IdentifierError
from fraudgraph.schema import IDENTIFIER_KINDS, IDENTIFIER_PROBLEMS, numeric_property

from ..dependencies import Services, customer_or_404, require, services
from ..errors import ERRORS, NOT_FOUND, ApiError
from ..properties import as_int, blocked, decision, label, neighbour_rows, reasons, review_outcome
from ..schemas import CustomerOut, IdentifierOut, LookupOut, NeighbourhoodOut, SharedIdentifierOut

LOOKUP_FIELDS = {"email": "email", "ip": "ip", "device_id": "device", "card_fingerprint": "card"}
MAX_LIMIT = 500  # the OpenAPI bound; api.max_neighbourhood_limit (at most this) is checked per request
router = APIRouter(prefix="/v1", tags=["graph"], dependencies=[require("read")])


def _limit(limit: int, svc: Services) -> int:
    if limit > svc.settings.api.max_neighbourhood_limit:
        raise ApiError(422, "invalid_request", f"limit: at most {svc.settings.api.max_neighbourhood_limit}")
    return limit


@router.get("/customers/{customer_id}", response_model=CustomerOut, responses={**ERRORS, **NOT_FOUND})
def get_customer(
    customer_id: str, props: dict = Depends(customer_or_404), svc: Services = Depends(services)
) -> CustomerOut:
    """A customer's identity (hashed identifiers by kind, with degree), label, latest score and decision."""
    by_kind: dict[str, list[IdentifierOut]] = {k: [] for k in IDENTIFIER_KINDS}
    for ident in svc.store.identity(customer_id):
        p = ident.properties
        by_kind[ident.kind].append(
            IdentifierOut(
                kind=ident.kind,
                value_hash=ident.value_hash,
                first_seen=int(p["first_seen"]),
                last_seen=int(p["last_seen"]),
                event_count=int(p["event_count"]),
                counts={k[len("count_") :]: int(v) for k, v in p.items() if k.startswith("count_") and v},
                degree=int(ident.degree),
            )
        )
    return CustomerOut(
        customer_id=customer_id,
        label=label(props),
        label_source=props.get("label_source"),
        blocked=blocked(props),
        score=numeric_property(props.get("score")),
        decision=decision(props),
        reason_codes=reasons(props.get("decision_reasons")),
        model_version=props.get("model_version"),
        scored_as_of=as_int(props.get("scored_as_of")),
        lifetime_value=numeric_property(props.get("lifetime_value")),
        review_outcome=review_outcome(props),
        identifiers=by_kind,
    )


@router.get(
    "/customers/{customer_id}/neighbourhood",
    response_model=NeighbourhoodOut,
    responses={**ERRORS, **NOT_FOUND},
    dependencies=[Depends(customer_or_404)],
)
def get_neighbourhood(
    customer_id: str,
    hops: int = Query(1, ge=1, le=2),
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
    svc: Services = Depends(services),
) -> NeighbourhoodOut:
    """Customers sharing identifiers with this one (hops=2: and with those), through which identifiers.

    Each identifier contributes at most the model's fan-out cap of customers (lowest ids first);
    ``limit`` caps the customers returned.
    """
    limit, cap = _limit(limit, svc), svc.scorer.cap
    hop: dict[str, int] = {customer_id: 0}
    via: dict[str, set[str]] = {}
    idents: list[SharedIdentifierOut] = []
    truncated = False
    frontier = [customer_id]
    for depth in (1, 2)[:hops]:
        nexts: list[str] = []
        hoods = svc.store.neighbourhoods(frontier, fanout_cap=cap)
        seen_idents: set[tuple[str, str]] = {(i.kind, i.value_hash) for i in idents}
        for centre in frontier:
            for ident in hoods[centre].identifiers:
                key = f"{ident.kind}:{ident.value_hash}"
                shown = 0
                for other in ident.customers:
                    if other not in hop:
                        if len(hop) - 1 >= limit:
                            truncated = True
                            continue
                        hop[other] = depth
                        nexts.append(other)
                    if hop[other] == depth:
                        via.setdefault(other, set()).add(key)
                        shown += 1
                if (ident.kind, ident.value_hash) not in seen_idents:
                    seen_idents.add((ident.kind, ident.value_hash))
                    idents.append(
                        SharedIdentifierOut(
                            kind=ident.kind,
                            value_hash=ident.value_hash,
                            hop=depth,
                            degree=ident.degree,
                            customers_shown=shown,
                            truncated=ident.truncated or shown < ident.degree - 1,
                        )
                    )
                truncated = truncated or ident.truncated
        frontier = nexts
    others = [c for c in hop if c != customer_id]
    return NeighbourhoodOut(
        customer_id=customer_id,
        hops=hops,
        fanout_cap=cap,
        limit=limit,
        truncated=truncated,
        identifiers=idents,
        customers=neighbour_rows(svc.store, others, hop, via) if others else [],
    )


@router.get("/lookup", response_model=LookupOut, responses={**ERRORS})
def lookup(
    email: str | None = Query(None, description="raw email, hashed with the graph's key"),
    ip: str | None = Query(None),
    device_id: str | None = Query(None),
    card_fingerprint: str | None = Query(None, description="the processor's fingerprint, never a PAN"),
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
    svc: Services = Depends(services),
) -> LookupOut:
    """Customers linked to one raw identifier (give exactly one). The raw value is hashed and dropped."""
    limit = _limit(limit, svc)
    given = {
        f: v
        for f, v in (("email", email), ("ip", ip), ("device_id", device_id), ("card_fingerprint", card_fingerprint))
        if v is not None
    }
    if len(given) != 1:
        raise ApiError(422, "invalid_request", "give exactly one of email, ip, device_id, card_fingerprint")
    ((field, raw),) = given.items()
    check = IDENTIFIER_PROBLEMS.get(field)
    problem = check(raw) if check else (None if raw.strip() else "must not be empty")
    if problem:
        raise ApiError(422, "invalid_request", f"{field}: {problem}")
    kind = LOOKUP_FIELDS[field]
    try:
        value_hash = svc.hasher.hash(kind, raw)
    except IdentifierError as exc:  # its message names the kind and reason, never the value
        raise ApiError(422, "invalid_request", f"{field}: {str(exc).split(': ', 1)[-1]}") from None
    finally:
        del raw, given
    links, stats = svc.store.identifier_inputs([(kind, value_hash)], limit)
    degree = int(stats["degree"].iloc[0]) if len(stats) else 0
    ids = sorted(links["customer_id"]) if degree else []
    key = f"{kind}:{value_hash}"
    return LookupOut(
        kind=kind,
        value_hash=value_hash,
        degree=degree,
        truncated=degree > len(ids),
        customers=neighbour_rows(svc.store, ids, {c: 1 for c in ids}, {c: {key} for c in ids}) if ids else [],
    )
