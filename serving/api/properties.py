"""Reading customer vertex properties into the API's shapes (shared by the routers)."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from fraudgraph.schema import numeric_property

from .schemas import NeighbourCustomer

if TYPE_CHECKING:
    from fraudgraph.graph import IdentityGraph


def as_int(value: Any) -> int | None:
    n = numeric_property(value)
    return None if n is None else int(n)


def reasons(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str) and value:
        try:
            parsed = json.loads(value)
        except ValueError:
            return [value]
        return [str(v) for v in parsed] if isinstance(parsed, list) else [str(parsed)]
    return []


def decision(props: dict) -> str | None:
    d = props.get("decision")
    return d if d in ("block", "review", "allow") else None


def label(props: dict) -> str | None:
    value = props.get("clean_label")
    return str(value) if value is not None and not (isinstance(value, float) and math.isnan(value)) else None


def blocked(props: dict) -> bool:
    at, lifted = as_int(props.get("blocked_at")), as_int(props.get("unblocked_at"))
    return at is not None and (lifted is None or lifted < at)


def review_outcome(props: dict) -> str | None:
    return props.get("review_outcome") if props.get("review_outcome") in ("fraud", "legit") else None


def review_case(props: dict) -> tuple[bool, bool]:
    """``(in the queue: decided review, closed: an outcome recorded since the latest scoring)``."""
    outcome, outcome_at, scored = (
        review_outcome(props),
        as_int(props.get("review_outcome_at")),
        as_int(props.get("scored_as_of")),
    )
    closed = outcome is not None and (scored is None or outcome_at is None or outcome_at >= scored)
    return decision(props) == "review", closed


def neighbour_rows(
    store: IdentityGraph, customer_ids: list[str], hop: dict[str, int], via: dict[str, set[str]]
) -> list[NeighbourCustomer]:
    frame = store.customers_of(customer_ids)
    props = {r["customer_id"]: r for r in frame.to_dict("records")} if len(frame) else {}
    return [
        NeighbourCustomer(
            customer_id=c,
            hop=hop[c],
            via=sorted(via[c]),
            label=label(props.get(c, {})),
            decision=decision(props.get(c, {})),
            score=numeric_property(props.get(c, {}).get("score")),
        )
        for c in customer_ids
    ]
