"""The API's contract: typed request and response models (OpenAPI is generated from them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class IdentifierOut(BaseModel):
    kind: Literal["device", "ip", "email", "card", "subnet"]
    value_hash: str
    first_seen: int = Field(description="epoch ms")
    last_seen: int = Field(description="epoch ms")
    event_count: int
    counts: dict[str, int] = Field(description="events per type on this link")
    degree: int = Field(description="customers linked to the identifier")


class CustomerOut(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    customer_id: str
    label: str | None = Field(None, description="clean label from the labels stage: fraud, legit or unknown")
    label_source: str | None = None
    blocked: bool
    score: float | None = None
    decision: Literal["block", "review", "allow", "blocked"] | None = None
    reason_codes: list[str] = []
    model_version: str | None = None
    scored_as_of: int | None = None
    lifetime_value: float | None = None
    review_outcome: Literal["fraud", "legit"] | None = None
    identifiers: dict[str, list[IdentifierOut]] = Field(description="by kind: device, ip, email, card, subnet")


class NeighbourCustomer(BaseModel):
    customer_id: str
    hop: int = Field(description="1: shares an identifier with the customer; 2: with a hop-1 customer")
    via: list[str] = Field(description="identifiers shared, as kind:value_hash")
    label: str | None = None
    decision: Literal["block", "review", "allow", "blocked"] | None = None
    score: float | None = None


class SharedIdentifierOut(BaseModel):
    kind: Literal["device", "ip", "email", "card", "subnet"]
    value_hash: str
    hop: int
    degree: int = Field(description="true number of customers on the identifier")
    customers_shown: int
    truncated: bool = Field(description="the fan-out cap or limit left customers out")


class NeighbourhoodOut(BaseModel):
    customer_id: str
    hops: int
    fanout_cap: int
    limit: int
    truncated: bool
    identifiers: list[SharedIdentifierOut]
    customers: list[NeighbourCustomer]


class LookupOut(BaseModel):
    kind: Literal["device", "ip", "email", "card"]
    value_hash: str
    degree: int
    customers: list[NeighbourCustomer]
    truncated: bool


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_ids: list[str] = Field(min_length=1, description="customers to score now")


class ScoreOut(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    customer_id: str
    score: float | None = Field(
        description="fraud probability; null when the customer's block stands (decision blocked)"
    )
    decision: Literal["block", "review", "allow", "blocked"]
    reason_codes: list[str]
    reasons: list[str]
    model_version: str
    as_of: int = Field(description="epoch ms")


class ScoreResponse(BaseModel):
    results: list[ScoreOut]
    not_found: list[str]


class ReviewCase(BaseModel):
    customer_id: str
    score: float | None
    lifetime_value: float | None
    reason_codes: list[str]
    scored_as_of: int | None
    status: Literal["open", "closed"]
    outcome: Literal["fraud", "legit"] | None = None
    outcome_at: int | None = None


class ReviewPage(BaseModel):
    status: Literal["open", "closed"]
    total: int
    offset: int
    limit: int
    next_offset: int | None
    cases: list[ReviewCase]


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["fraud", "legit"]
    note: str = Field("", max_length=2000)


class ReviewOut(BaseModel):
    customer_id: str
    outcome: Literal["fraud", "legit"]
    outcome_at: int = Field(description="epoch ms")
    status: Literal["closed"]


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready", "not_ready"]
    components: dict[str, str] = Field(
        description="graph, model, review_log: ok or what is wrong (no paths, no versions)"
    )


class ReviewEntry(BaseModel):
    customer_id: str
    seq: int = Field(description="position in the append-only review log")
    outcome: Literal["fraud", "legit"]
    actor: str = Field(description="name of the token that recorded it")
    at: int = Field(description="epoch ms")
    previous_decision: Literal["block", "review", "allow", "blocked"] | None = None
    previous_outcome: Literal["fraud", "legit"] | None = None
    override: bool = Field(description="recorded outside the review queue with the override scope")
    note: str = ""


class ReviewHistory(BaseModel):
    customer_id: str
    entries: list[ReviewEntry]
