"""The internal query API and the analyst review console (FastAPI).

``fraudgraph api --graph URI --model MODEL_DIR [--host 127.0.0.1 --port 8080]``

Endpoints (bearer token scopes in brackets):

- ``GET /v1/customers/{id}`` [read]: identity, label, latest score and decision.
- ``GET /v1/customers/{id}/neighbourhood?hops=1|2&limit=N`` [read]: customers
  sharing identifiers, through which identifiers, with fan-out caps reported.
- ``GET /v1/lookup?email=|ip=|device_id=|card_fingerprint=`` [read]: a raw
  identifier, hashed with the graph's key, to its customers. The raw value is
  never stored, echoed or logged (uvicorn's access log is off; ours logs the
  path without the query string).
- ``POST /v1/score`` [score]: online scores and decisions, the consumer's code path.
- ``GET /v1/reviews`` and ``POST /v1/reviews/{id}`` [review]: the review queue
  and the analyst's outcome, which the labels stage uses first.
- ``/healthz``, ``/readyz``, ``/metrics`` (no token), ``/console`` (the page;
  its API calls carry the analyst's token).

Errors are ``{"error": {"code": ..., "message": ...}}`` with the HTTP status.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from pathlib import Path
from typing import Any, Literal

import yaml
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from fraudgraph.config import ApiSettings, Settings
from fraudgraph.graph import IdentityGraph
from fraudgraph.identity import IdentifierError, IdentifierHasher
from fraudgraph.scoring.online import OnlineScorer
from fraudgraph.scoring.rules import decision_properties
from fraudgraph.schema import IDENTIFIER_KINDS, IDENTIFIER_PROBLEMS, numeric_property
from fraudgraph.timeutil import now_ms

log = logging.getLogger("fraudgraph.api")
CONSOLE_HTML = Path(__file__).with_name("console") / "index.html"
LOOKUP_FIELDS = {"email": "email", "ip": "ip", "device_id": "device", "card_fingerprint": "card"}


# ----------------------------------------------------------------- errors
class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. not_found, unauthorized, invalid_request")
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


ERRORS = {401: {"model": ErrorResponse, "description": "missing or invalid bearer token"},
          403: {"model": ErrorResponse, "description": "token lacks the scope"},
          422: {"model": ErrorResponse, "description": "invalid request"}}
NOT_FOUND = {404: {"model": ErrorResponse, "description": "unknown customer"}}


# ----------------------------------------------------------------- models
class IdentifierOut(BaseModel):
    kind: Literal["device", "ip", "email", "card"]
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
    decision: Literal["block", "review", "allow"] | None = None
    reason_codes: list[str] = []
    model_version: str | None = None
    scored_as_of: int | None = None
    lifetime_value: float | None = None
    review_outcome: Literal["fraud", "legit"] | None = None
    identifiers: dict[str, list[IdentifierOut]] = Field(description="by kind: device, ip, email, card")


class NeighbourCustomer(BaseModel):
    customer_id: str
    hop: int = Field(description="1: shares an identifier with the customer; 2: with a hop-1 customer")
    via: list[str] = Field(description="identifiers shared, as kind:value_hash")
    label: str | None = None
    decision: Literal["block", "review", "allow"] | None = None
    score: float | None = None


class SharedIdentifierOut(BaseModel):
    kind: Literal["device", "ip", "email", "card"]
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
    score: float
    decision: Literal["block", "review", "allow"]
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
    model_config = ConfigDict(protected_namespaces=())
    status: Literal["ready"]
    graph: str
    model_version: str


# ------------------------------------------------------------------ auth
def load_tokens(cfg: ApiSettings) -> dict[str, frozenset[str]]:
    """``api.tokens`` merged with ``api.tokens_file`` (YAML or JSON mapping token -> scopes)."""
    tokens = {t: frozenset(s) for t, s in cfg.tokens.items()}
    if cfg.tokens_file:
        data = yaml.safe_load(Path(cfg.tokens_file).read_text()) or {}
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise ValueError(f"api.tokens_file {cfg.tokens_file}: expected a mapping token -> list of scopes")
        bad = {s for v in data.values() for s in v} - {"read", "score", "review"}
        if bad:
            raise ValueError(f"api.tokens_file {cfg.tokens_file}: unknown scopes {sorted(bad)}")
        tokens.update({str(t): frozenset(s) for t, s in data.items()})
    return tokens


def _int(value: Any) -> int | None:
    n = numeric_property(value)
    return None if n is None else int(n)


def _reasons(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str) and value:
        try:
            parsed = json.loads(value)
        except ValueError:
            return [value]
        return [str(v) for v in parsed] if isinstance(parsed, list) else [str(parsed)]
    return []


def _decision(props: dict) -> str | None:
    d = props.get("decision")
    return d if d in ("block", "review", "allow") else None


# ------------------------------------------------------------------- app
def create_app(store: IdentityGraph, scorer: OnlineScorer, settings: Settings) -> FastAPI:
    """The API over an open store and a loaded model. The caller owns (and closes) the store."""
    cfg = settings.api
    tokens = load_tokens(cfg)
    if not tokens:
        log.warning("no API tokens configured (api.tokens / api.tokens_file): every /v1 call will get 401")
    hasher = IdentifierHasher.from_settings(settings.privacy)
    cap = scorer.cap
    scoring_slots = threading.BoundedSemaphore(cfg.score_concurrency)
    registry = CollectorRegistry()
    requests = Counter("fraudgraph_api_requests_total", "API requests", ["route", "status"], registry=registry)
    latency = Histogram("fraudgraph_api_request_seconds", "API request latency", ["route"], registry=registry,
                        buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

    app = FastAPI(title="fraudgraph internal API", version="1", description=__doc__.split("\n\n")[0],
                  responses={422: {"model": ErrorResponse, "description": "invalid request"}})

    # ------------------------------------------------------------ plumbing
    @app.middleware("http")
    async def observe(request: Request, call_next):
        started = time.perf_counter()
        route = request.url.path
        try:
            response = await call_next(request)
        except Exception:  # noqa: BLE001 - logged and answered as a structured 500
            log.exception("unhandled error on %s %s", request.method, route)
            response = JSONResponse({"error": {"code": "internal", "message": "internal error"}}, status_code=500)
        found = request.scope.get("route")
        template = getattr(found, "path", "unmatched")
        requests.labels(template, str(response.status_code)).inc()
        latency.labels(template).observe(time.perf_counter() - started)
        # path only: a lookup's raw identifier lives in the query string and is never logged
        log.info("%s %s %d %.1fms", request.method, route, response.status_code,
                 (time.perf_counter() - started) * 1000)
        return response

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError):
        return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=exc.status,
                            headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": {"code": code, "message": str(exc.detail)}}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError):
        # field and reason only: the input itself may be a raw identifier
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
            parts.append(f"{loc or 'request'}: {err.get('msg', 'invalid')}")
        return JSONResponse({"error": {"code": "invalid_request", "message": "; ".join(parts)}}, status_code=422)

    def require(scope: str):
        def check(request: Request) -> str:
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise ApiError(401, "unauthorized", "a bearer token is required",
                               {"WWW-Authenticate": "Bearer"})
            scopes = tokens.get(token.strip())
            if scopes is None:
                raise ApiError(401, "unauthorized", "the bearer token is not valid", {"WWW-Authenticate": "Bearer"})
            if scope not in scopes:
                raise ApiError(403, "forbidden", f"the token lacks the {scope!r} scope")
            return scope
        return Depends(check)

    def customer_or_404(customer_id: str) -> dict:
        props = store.customer(customer_id)
        if props is None:
            raise ApiError(404, "not_found", f"customer {customer_id!r} is not in the graph")
        return props

    def neighbour_rows(customer_ids: list[str], hop: dict[str, int], via: dict[str, set[str]]):
        frame = store.customers_of(customer_ids)
        props = {r["customer_id"]: r for r in frame.to_dict("records")} if len(frame) else {}
        return [NeighbourCustomer(customer_id=c, hop=hop[c], via=sorted(via[c]),
                                  label=_label(props.get(c, {})), decision=_decision(props.get(c, {})),
                                  score=numeric_property(props.get(c, {}).get("score")))
                for c in customer_ids]

    # ------------------------------------------------------------ endpoints
    @app.get("/healthz", response_model=Health, tags=["ops"])
    def healthz():
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=Ready, tags=["ops"],
             responses={503: {"model": ErrorResponse, "description": "graph store or model unreachable"}})
    def readyz():
        """The graph store answers and the model is loaded."""
        try:
            store.customer("__readiness_probe__")
        except Exception as exc:  # noqa: BLE001 - any store failure means not ready
            raise ApiError(503, "not_ready", f"graph store unreachable: {type(exc).__name__}") from None
        return {"status": "ready", "graph": store.uri.split("?")[0], "model_version": scorer.artifact.version}

    @app.get("/metrics", tags=["ops"], response_class=Response, include_in_schema=False)
    def metrics():
        """Prometheus metrics (request counts and latency per route)."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/console", response_class=HTMLResponse, include_in_schema=False)
    def console():
        return HTMLResponse(CONSOLE_HTML.read_text())

    @app.get("/v1/customers/{customer_id}", response_model=CustomerOut, tags=["graph"],
             responses={**ERRORS, **NOT_FOUND}, dependencies=[require("read")])
    def get_customer(customer_id: str):
        """A customer's identity (hashed identifiers by kind, with degree), label, latest score and decision."""
        props = customer_or_404(customer_id)
        by_kind: dict[str, list[IdentifierOut]] = {k: [] for k in IDENTIFIER_KINDS}
        for ident in store.identity(customer_id):
            p = ident.properties
            by_kind[ident.kind].append(IdentifierOut(
                kind=ident.kind, value_hash=ident.value_hash, first_seen=int(p["first_seen"]),
                last_seen=int(p["last_seen"]), event_count=int(p["event_count"]),
                counts={k[len("count_"):]: int(v) for k, v in p.items() if k.startswith("count_") and v},
                degree=int(ident.degree)))
        return CustomerOut(customer_id=customer_id, label=_label(props), label_source=props.get("label_source"),
                           blocked=_blocked(props), score=numeric_property(props.get("score")), decision=_decision(props),
                           reason_codes=_reasons(props.get("decision_reasons")),
                           model_version=props.get("model_version"), scored_as_of=_int(props.get("scored_as_of")),
                           lifetime_value=numeric_property(props.get("lifetime_value")),
                           review_outcome=props.get("review_outcome") if props.get("review_outcome") in
                           ("fraud", "legit") else None, identifiers=by_kind)

    @app.get("/v1/customers/{customer_id}/neighbourhood", response_model=NeighbourhoodOut, tags=["graph"],
             responses={**ERRORS, **NOT_FOUND}, dependencies=[require("read")])
    def get_neighbourhood(customer_id: str, hops: int = Query(1, ge=1, le=2),
                          limit: int = Query(50, ge=1, le=cfg.max_neighbourhood_limit)):
        """Customers sharing identifiers with this one (hops=2: and with those), through which identifiers.

        Each identifier contributes at most the model's fan-out cap of customers
        (lowest ids first); ``limit`` caps the customers returned.
        """
        customer_or_404(customer_id)
        hop: dict[str, int] = {customer_id: 0}
        via: dict[str, set[str]] = {}
        idents: list[SharedIdentifierOut] = []
        truncated = False
        frontier = [customer_id]
        for depth in (1, 2)[:hops]:
            nexts: list[str] = []
            hoods = store.neighbourhoods(frontier, fanout_cap=cap)
            seen_idents = {(i.kind, i.value_hash) for i in idents}
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
                        idents.append(SharedIdentifierOut(kind=ident.kind, value_hash=ident.value_hash, hop=depth,
                                                          degree=ident.degree, customers_shown=shown,
                                                          truncated=ident.truncated or shown < ident.degree - 1))
                    truncated = truncated or ident.truncated
            frontier = nexts
        others = [c for c in hop if c != customer_id]
        return NeighbourhoodOut(customer_id=customer_id, hops=hops, fanout_cap=cap, limit=limit,
                                truncated=truncated, identifiers=idents,
                                customers=neighbour_rows(others, hop, via) if others else [])

    @app.get("/v1/lookup", response_model=LookupOut, tags=["graph"], responses={**ERRORS},
             dependencies=[require("read")])
    def lookup(email: str | None = Query(None, description="raw email, hashed with the graph's key"),
               ip: str | None = Query(None), device_id: str | None = Query(None),
               card_fingerprint: str | None = Query(None, description="the processor's fingerprint, never a PAN"),
               limit: int = Query(50, ge=1, le=cfg.max_neighbourhood_limit)):
        """Customers linked to one raw identifier (give exactly one). The raw value is hashed and dropped."""
        given = {f: v for f, v in (("email", email), ("ip", ip), ("device_id", device_id),
                                   ("card_fingerprint", card_fingerprint)) if v is not None}
        if len(given) != 1:
            raise ApiError(422, "invalid_request",
                           "give exactly one of email, ip, device_id, card_fingerprint")
        (field, raw), = given.items()
        check = IDENTIFIER_PROBLEMS.get(field)
        problem = check(raw) if check else (None if raw.strip() else "must not be empty")
        if problem:
            raise ApiError(422, "invalid_request", f"{field}: {problem}")
        kind = LOOKUP_FIELDS[field]
        try:
            value_hash = hasher.hash(kind, raw)
        except IdentifierError as exc:  # its message names the kind and reason, never the value
            raise ApiError(422, "invalid_request", f"{field}: {str(exc).split(': ', 1)[-1]}") from None
        finally:
            del raw, given
        stats = store.identifier_stats([(kind, value_hash)])
        degree = int(stats["degree"].iloc[0]) if len(stats) else 0
        links = store.identifier_links([(kind, value_hash)], limit) if degree else None
        ids = sorted(links["customer_id"]) if links is not None else []
        key = f"{kind}:{value_hash}"
        return LookupOut(kind=kind, value_hash=value_hash, degree=degree, truncated=degree > len(ids),
                         customers=neighbour_rows(ids, {c: 1 for c in ids}, {c: {key} for c in ids}) if ids else [])

    @app.post("/v1/score", response_model=ScoreResponse, tags=["scoring"], responses={**ERRORS},
              dependencies=[require("score")])
    def score(body: ScoreRequest):
        """Score and decide customers now, online, through the consumer's code path (one subgraph)."""
        ids = list(dict.fromkeys(body.customer_ids))
        if len(ids) > cfg.max_score_ids:
            raise ApiError(422, "invalid_request", f"customer_ids: at most {cfg.max_score_ids} per request")
        as_of = now_ms()
        with scoring_slots:  # CPU-bound: more at once than cores only thrashes
            results = scorer.score_many(ids, as_of)
        out = [ScoreOut(customer_id=c, score=r.score, decision=r.decision.decision,
                        reason_codes=list(r.decision.reason_codes), reasons=list(r.decision.reasons),
                        model_version=r.model_version, as_of=r.as_of_ms) for c, r in results.items()]
        if cfg.write_scores and results:
            store.set_customer_properties({r.customer_id: decision_properties(
                r.score, r.decision, r.reason_codes, r.model_version, r.as_of) for r in out})
        return ScoreResponse(results=out, not_found=[c for c in ids if c not in results])

    @app.get("/v1/reviews", response_model=ReviewPage, tags=["reviews"], responses={**ERRORS},
             dependencies=[require("review")])
    def reviews(status: Literal["open", "closed"] = "open", offset: int = Query(0, ge=0),
                limit: int = Query(50, ge=1, le=cfg.review_page_max)):
        """Customers decided ``review``: open (no outcome yet) or closed; highest score, then value, first."""
        frame = store.customers_with("decision", "review")
        cases = []
        for r in frame.to_dict("records") if len(frame) else []:
            outcome = r.get("review_outcome") if r.get("review_outcome") in ("fraud", "legit") else None
            outcome_at = _int(r.get("review_outcome_at"))
            scored = _int(r.get("scored_as_of"))
            # a review recorded before the latest scoring that asked for review leaves the case open again
            closed = outcome is not None and (scored is None or outcome_at is None or outcome_at >= scored)
            if (status == "closed") != closed:
                continue
            cases.append(ReviewCase(customer_id=r["customer_id"], score=numeric_property(r.get("score")),
                                    lifetime_value=numeric_property(r.get("lifetime_value")),
                                    reason_codes=_reasons(r.get("decision_reasons")), scored_as_of=scored,
                                    status="closed" if closed else "open", outcome=outcome if closed else None,
                                    outcome_at=outcome_at if closed else None))
        cases.sort(key=lambda c: (-(c.score or 0), -(c.lifetime_value or 0), c.customer_id))
        page = cases[offset:offset + limit]
        nxt = offset + limit if offset + limit < len(cases) else None
        return ReviewPage(status=status, total=len(cases), offset=offset, limit=limit, next_offset=nxt, cases=page)

    @app.post("/v1/reviews/{customer_id}", response_model=ReviewOut, tags=["reviews"],
              responses={**ERRORS, **NOT_FOUND}, dependencies=[require("review")])
    def record_review(customer_id: str, body: ReviewRequest):
        """Record the analyst's outcome: it closes the case and is the first label source on the next labels run."""
        customer_or_404(customer_id)
        if len(body.note) > cfg.note_max_chars:
            raise ApiError(422, "invalid_request", f"note: at most {cfg.note_max_chars} characters")
        now = now_ms()
        store.set_customer_properties({customer_id: {"review_outcome": body.outcome, "review_outcome_at": now,
                                                     "review_note": body.note}})
        log.info("review outcome recorded for a customer: %s", body.outcome)
        return ReviewOut(customer_id=customer_id, outcome=body.outcome, outcome_at=now, status="closed")

    return app


def _label(props: dict) -> str | None:
    label = props.get("clean_label")
    return str(label) if label is not None and not (isinstance(label, float) and math.isnan(label)) else None


def _blocked(props: dict) -> bool:
    blocked, unblocked = _int(props.get("blocked_at")), _int(props.get("unblocked_at"))
    return blocked is not None and (unblocked is None or unblocked < blocked)


__all__ = ["create_app", "load_tokens"]
