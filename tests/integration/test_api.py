"""The internal query API against a real uvicorn server on loopback, on both graph backends."""

from __future__ import annotations

import json
import logging
import time

import httpx
import pandas as pd
import pytest

from fraudgraph.event_tags import EventTagger
from fraudgraph.graph import CustomerUpsert, customer_properties
from fraudgraph.identity import IdentifierHasher

from api_helpers import start_uvicorn

TOKENS = {"reader": ["read"], "scorer": ["score"], "analyst": {"name": "alice", "scopes": ["read", "review"]},
          "all": {"name": "lead", "scopes": ["read", "score", "review", "override"]}}


def scopes_of(token):
    spec = TOKENS[token]
    return spec["scopes"] if isinstance(spec, dict) else spec
RAW_EMAIL_FIELD = "email"
BODY_TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def flagging_model(small_world, settings, tmp_path_factory):
    """A seeded model with threshold 0: every scored customer is flagged (review if valuable, else block)."""
    from etl.reference import reference_etl

    from testing_support import untrained_artifact

    ref = reference_etl(small_world, IdentifierHasher.from_settings(settings.privacy), EventTagger(settings.event_tags))
    as_of = pd.Timestamp(json.loads((small_world / "manifest.json").read_text())["cutoff"]).value // 10**6
    out = untrained_artifact(ref["customers"], ref["links"], as_of, settings, tmp_path_factory.mktemp("api-model"),
                             fanout_cap=20, threshold=0.0, seed=3, hidden=16, edge_hidden=8)
    return out, ref, as_of


@pytest.fixture(scope="module", params=["sqlite", pytest.param("gremlin", marks=[pytest.mark.slow,
                                                                                  pytest.mark.gremlin])])
def api(request, flagging_model, settings, tmp_path_factory):
    """``(base URL, store, reference frames, as-of)`` of a running API over the small world."""
    from fraudgraph.graph import open_graph
    from fraudgraph.labels.stage import run_labels
    from fraudgraph.ml.artifact import ModelArtifact
    from fraudgraph.scoring.online import OnlineScorer
    from localservers import free_port
    from serving.api import create_app

    from testing_support import frames_to_elements

    model_dir, ref, as_of = flagging_model
    tmp = tmp_path_factory.mktemp(f"api-{request.param}")
    if request.param == "sqlite":
        store = open_graph(f"sqlite:///{tmp / 'graph.db'}", settings)
    else:
        store = open_graph(request.getfixturevalue("gremlin_server").url, settings)
        store.clear()
    customers, links = frames_to_elements(ref["customers"], ref["links"])
    store.upsert_customers(customers)
    store.upsert_links(links)
    run_labels(store, as_of, tmp / "labels", settings)
    api_settings = settings.model_copy(update={"api": type(settings.api).model_validate(
        {**settings.api.model_dump(), "tokens": TOKENS, "review_log": str(tmp / "reviews.db"),
         "body_timeout_s": BODY_TIMEOUT_S})})
    app = create_app(store, OnlineScorer(store, ModelArtifact.load(model_dir), api_settings), api_settings)
    port = free_port()
    server, thread = start_uvicorn(app, port)
    yield f"http://127.0.0.1:{port}", store, ref, as_of
    server.should_exit = True
    thread.join(10)
    store.close()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_health_ready_metrics_need_no_token(api):
    base, *_ = api
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{base}/readyz")
    assert ready.json() == {"status": "ready", "components": {"graph": "ok", "model": "ok", "review_log": "ok"}}
    assert ready.headers["x-content-type-options"] == "nosniff" and "frame-ancestors 'none'" in \
        ready.headers["content-security-policy"]
    csp = ready.headers["content-security-policy"]
    assert "'unsafe-inline'" not in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
    page = httpx.get(f"{base}/console")
    assert "<script>" not in page.text and "style=" not in page.text  # nothing inline for the policy to allow
    assert httpx.get(f"{base}/console/console.js").headers["content-type"].startswith("text/javascript")
    assert httpx.get(f"{base}/console/console.css").headers["content-type"].startswith("text/css")
    assert httpx.get(f"{base}/console/index.py").status_code == 404
    assert httpx.get(f"{base}/docs").status_code == 404  # Swagger UI (CDN assets) is off by default
    httpx.get(f"{base}/v1/customers/x", headers=bearer("reader"))
    metrics = httpx.get(f"{base}/metrics").text
    assert 'fraudgraph_api_requests_total{route="/v1/customers/{customer_id}",status="404"}' in metrics


@pytest.mark.parametrize("method,path,body,scope", [
    ("GET", "/v1/customers/{cid}", None, "read"),
    ("GET", "/v1/customers/{cid}/neighbourhood", None, "read"),
    ("GET", "/v1/lookup?ip=10.0.0.1", None, "read"),
    ("POST", "/v1/score", {"customer_ids": ["{cid}"]}, "score"),
    ("GET", "/v1/reviews", None, "review"),
    ("POST", "/v1/reviews/{cid}", {"outcome": "legit"}, "review"),
])
def test_auth_matrix(api, method, path, body, scope):
    base, _, ref, _ = api
    cid = ref["customers"]["customer_id"].iloc[0]
    url = base + path.format(cid=cid)
    payload = json.loads(json.dumps(body).replace("{cid}", cid)) if body else None
    for headers, want in [({}, 401), (bearer("nope"), 401), ({"Authorization": "Basic abc"}, 401)]:
        r = httpx.request(method, url, json=payload, headers=headers)
        assert r.status_code == want
        assert r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
    for token in TOKENS:
        scopes = scopes_of(token)
        r = httpx.request(method, url, json=payload, headers=bearer(token))
        if scope in scopes and path == "/v1/reviews/{cid}" and "override" not in scopes:
            assert r.status_code == 409 and r.json()["error"]["code"] == "not_in_queue"  # not in the queue
        elif scope in scopes:
            assert r.status_code == 200, r.text
        else:
            assert r.status_code == 403
            assert r.json()["error"] == {"code": "forbidden", "message": f"the token lacks the {scope!r} scope"}


def test_customer_identity_label_and_404(api):
    base, store, ref, _ = api
    links = ref["links"]
    cid = links.groupby("customer_id").size().idxmax()
    r = httpx.get(f"{base}/v1/customers/{cid}", headers=bearer("reader"))
    assert r.status_code == 200
    body = r.json()
    want = links.loc[links["customer_id"] == cid]
    got = {(k, i["value_hash"]): i for k, items in body["identifiers"].items() for i in items}
    assert set(got) == set(zip(want["kind"], want["value_hash"]))
    for row in want.itertuples():
        ident = got[(row.kind, row.value_hash)]
        assert ident["event_count"] == row.event_count and ident["first_seen"] == row.first_seen
        assert ident["degree"] == int(((links["kind"] == row.kind) & (links["value_hash"] == row.value_hash)).sum())
    assert body["label"] == customer_properties(store, cid)["clean_label"]
    missing = httpx.get(f"{base}/v1/customers/no-such-customer", headers=bearer("reader"))
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    hood = httpx.get(f"{base}/v1/customers/no-such-customer/neighbourhood", headers=bearer("reader"))
    assert hood.status_code == 404


def test_neighbourhood_hops_limit_and_caps(api):
    base, _, ref, _ = api
    links = ref["links"]
    degree = links.groupby(["kind", "value_hash"])["customer_id"].transform("size")
    cid = links.loc[degree > 25, "customer_id"].iloc[0]  # uses an identifier above the model's cap of 20
    one = httpx.get(f"{base}/v1/customers/{cid}/neighbourhood", params={"hops": 1, "limit": 500},
                    headers=bearer("reader")).json()
    assert one["fanout_cap"] == 20 and one["truncated"]
    mine = links.loc[links["customer_id"] == cid]
    assert {(i["kind"], i["value_hash"]) for i in one["identifiers"]} == set(zip(mine["kind"], mine["value_hash"]))
    assert any(i["truncated"] and i["degree"] > 20 for i in one["identifiers"])
    sharing = set(links.merge(mine[["kind", "value_hash"]])["customer_id"]) - {cid}
    assert {c["customer_id"] for c in one["customers"]} <= sharing
    assert all(c["hop"] == 1 and c["via"] for c in one["customers"])
    two = httpx.get(f"{base}/v1/customers/{cid}/neighbourhood", params={"hops": 2, "limit": 500},
                    headers=bearer("reader")).json()
    assert {c["customer_id"] for c in one["customers"]} < {c["customer_id"] for c in two["customers"]}
    assert {c["hop"] for c in two["customers"]} == {1, 2}
    small = httpx.get(f"{base}/v1/customers/{cid}/neighbourhood", params={"hops": 2, "limit": 5},
                      headers=bearer("reader")).json()
    assert len(small["customers"]) == 5 and small["truncated"]
    bad = httpx.get(f"{base}/v1/customers/{cid}/neighbourhood", params={"hops": 3}, headers=bearer("reader"))
    assert bad.status_code == 422 and "hops" in bad.json()["error"]["message"]


def test_lookup_by_raw_identifier_never_echoes_it(api, small_world, settings, caplog):
    base, _, ref, _ = api
    events = pd.read_parquet(small_world / "historical" / "events.parquet", columns=["customer_id", "email"])
    raw = events.dropna().iloc[0]["email"]
    hasher = IdentifierHasher.from_settings(settings.privacy)
    value_hash = hasher.hash("email", raw)
    links = ref["links"]
    want = set(links.loc[(links["kind"] == "email") & (links["value_hash"] == value_hash), "customer_id"])
    caplog.set_level(logging.DEBUG)
    # the same email with other case and spaces normalises to the same identifier
    r = httpx.get(f"{base}/v1/lookup", params={"email": f"  {raw.upper()} "}, headers=bearer("reader"))
    assert r.status_code == 200
    body = r.json()
    assert body["kind"] == "email" and body["value_hash"] == value_hash
    assert {c["customer_id"] for c in body["customers"]} == want and body["degree"] == len(want)
    assert raw.lower() not in r.text.lower()
    assert raw.lower() not in caplog.text.lower()
    unknown = httpx.get(f"{base}/v1/lookup", params={"ip": "203.0.113.250"}, headers=bearer("reader")).json()
    assert unknown["degree"] == 0 and unknown["customers"] == []
    for params in ({}, {"email": raw, "ip": "10.0.0.1"}):
        r = httpx.get(f"{base}/v1/lookup", params=params, headers=bearer("reader"))
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    bad = httpx.get(f"{base}/v1/lookup", params={"email": "not-an-email-secret"}, headers=bearer("reader"))
    assert bad.status_code == 422
    assert bad.json()["error"]["message"].startswith("email:") and "not-an-email-secret" not in bad.text
    pan = httpx.get(f"{base}/v1/lookup", params={"card_fingerprint": "4111 1111 1111 1111"},
                    headers=bearer("reader"))
    assert pan.status_code == 422 and "4111" not in pan.text


def test_score_writes_the_vertex_like_the_consumer(api, settings):
    base, store, ref, _ = api
    ids = list(ref["customers"]["customer_id"].iloc[10:14]) + ["no-such-customer"]
    r = httpx.post(f"{base}/v1/score", json={"customer_ids": ids}, headers=bearer("scorer"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["not_found"] == ["no-such-customer"]
    assert [x["customer_id"] for x in body["results"]] == ids[:4]
    for x in body["results"]:
        assert 0 <= x["score"] <= 1 and x["decision"] in ("block", "review") and "HIGH_SCORE" in x["reason_codes"]
        props = customer_properties(store, x["customer_id"])
        assert props["decision"] == x["decision"] and abs(props["score"] - x["score"]) < 1e-6
    for payload in ({"customer_ids": []}, {"ids": ["a"]}, {"customer_ids": "C1"}):
        bad = httpx.post(f"{base}/v1/score", json=payload, headers=bearer("scorer"))
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"


def metric(base: str, name: str) -> float:
    """One unlabelled series of the API's /metrics."""
    text = httpx.get(f"{base}/metrics").text
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))


def test_concurrent_score_requests_are_scored_in_batches_each_customer_as_alone(api, flagging_model, settings):
    from concurrent.futures import ThreadPoolExecutor

    from fraudgraph.ml.artifact import ModelArtifact
    from fraudgraph.scoring.online import OnlineScorer

    base, store, ref, _ = api
    ids = list(ref["customers"]["customer_id"].iloc[100:160])
    batches, requests = metric(base, "fraudgraph_api_score_batches_total"), metric(
        base, "fraudgraph_api_score_batched_requests_total")

    def one(customer_id):
        r = httpx.post(f"{base}/v1/score", json={"customer_ids": [customer_id]}, headers=bearer("scorer"))
        assert r.status_code == 200, r.text
        return r.json()["results"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, ids))
    # every request got its own customer back, and requests queued behind a batch were scored together
    assert [a[0]["customer_id"] for a in answers if a] == [c for c, a in zip(ids, answers) if a]
    assert metric(base, "fraudgraph_api_score_batched_requests_total") - requests == len(ids)
    assert metric(base, "fraudgraph_api_score_batches_total") - batches < len(ids)
    # a customer's score does not depend on who shares its batch: one subgraph of many equals each alone
    scorer = OnlineScorer(store, ModelArtifact.load(flagging_model[0]), settings)
    as_of = max(a[0]["as_of"] for a in answers if a)
    together = scorer.score_many(ids, as_of)
    for c in ids[:20]:
        alone = scorer.score_many([c], as_of)
        assert alone.keys() == ({c} & together.keys())
        if c in alone:
            a, b = alone[c].score, together[c].score
            assert (a is None and b is None) or abs(a - b) <= 1e-5
            assert alone[c].decision.decision == together[c].decision.decision
            assert alone[c].decision.reason_codes == together[c].decision.reason_codes


def test_scoring_processes_score_as_the_api_process_does_and_replace_a_killed_one(api, flagging_model, settings,
                                                                                   tmp_path):
    """``api.score_processes``: batches scored in worker processes give each customer the in-process
    scorer's score, decision and model version; a killed worker fails at most its own batch and is
    replaced, and the API answers every request after that."""
    import os
    import signal
    from concurrent.futures import ThreadPoolExecutor

    from fraudgraph.ml.artifact import ModelArtifact
    from fraudgraph.scoring.online import OnlineScorer
    from localservers import free_port
    from serving.api import create_app

    base, store, ref, _ = api
    s2 = settings.model_copy(update={"api": type(settings.api).model_validate(
        {**settings.api.model_dump(), "tokens": TOKENS, "write_scores": False, "score_processes": 2,
         "review_log": str(tmp_path / "reviews.db")})})
    artifact = ModelArtifact.load(flagging_model[0])
    app = create_app(store, OnlineScorer(store, artifact, s2), s2)
    workers = app.state.scoring_processes._workers
    assert len({w.process.pid for w in workers}) == 2 and all(w.process.is_alive() for w in workers)
    port = free_port()
    server, thread = start_uvicorn(app, port)
    url = f"http://127.0.0.1:{port}/v1/score"
    ids = list(ref["customers"]["customer_id"].iloc[200:224])

    def one(customer_id):
        r = httpx.post(url, json={"customer_ids": [customer_id]}, headers=bearer("scorer"), timeout=120)
        return r.status_code, r.json()

    try:
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(one, ids))
        assert all(status == 200 for status, _ in answers), answers
        scorer = OnlineScorer(store, artifact, settings)
        compared = 0
        for c, (_, body) in zip(ids, answers):
            for got in body["results"]:
                want = scorer.score_many([c], got["as_of"])[c]
                assert got["customer_id"] == c and got["model_version"] == artifact.version
                assert (got["score"] is None) == (want.score is None)
                if want.score is not None:
                    assert abs(got["score"] - want.score) <= 1e-5
                assert got["decision"] == want.decision.decision
                assert got["reason_codes"] == list(want.decision.reason_codes)
                compared += 1
        assert compared >= 20
        # both workers killed: each fails at most the one batch that finds it dead, then is replaced
        for w in list(workers):
            os.kill(w.process.pid, signal.SIGKILL)
            w.process.join(10)
        statuses = []
        for _ in range(4):
            with ThreadPoolExecutor(4) as pool:
                statuses.append([status for status, _ in pool.map(one, ids[:8])])
        failed = [s for burst in statuses for s in burst if s != 200]
        # the two batches that met a dead worker (a batch holds at most the 4 requests in flight)
        assert set(failed) <= {500} and len(failed) <= 8, statuses
        assert statuses[-2:] == [[200] * 8] * 2, statuses
        assert all(w.process.is_alive() for w in app.state.scoring_processes._workers)
    finally:
        server.should_exit = True
        thread.join(30)


def test_review_queue_outcome_and_labels(api, settings, tmp_path):
    from fraudgraph.labels.stage import run_labels

    base, store, ref, as_of = api
    customers = ref["customers"]
    valuable = list(customers.loc[pd.to_numeric(customers["lifetime_value"]) >= settings.rules.value_cut,
                                  "customer_id"].iloc[20:32])
    r = httpx.post(f"{base}/v1/score", json={"customer_ids": valuable}, headers=bearer("all"))
    assert {x["decision"] for x in r.json()["results"]} == {"review"}
    queue = httpx.get(f"{base}/v1/reviews", params={"status": "open", "limit": 200}, headers=bearer("analyst")).json()
    open_ids = [c["customer_id"] for c in queue["cases"]]
    assert set(valuable) <= set(open_ids)
    keys = [(-(c["score"] or 0), -(c["lifetime_value"] or 0)) for c in queue["cases"]]
    assert keys == sorted(keys)  # highest risk, then highest value, first
    page = httpx.get(f"{base}/v1/reviews", params={"limit": 5, "offset": 5}, headers=bearer("analyst")).json()
    assert [c["customer_id"] for c in page["cases"]] == open_ids[5:10] and page["next_offset"] == 10

    target = valuable[0]
    was = customer_properties(store, target).get("clean_label")
    outcome = "legit" if was == "fraud" else "fraud"
    r = httpx.post(f"{base}/v1/reviews/{target}", json={"outcome": outcome, "note": "checked documents"},
                   headers=bearer("analyst"))
    assert r.status_code == 200 and r.json()["status"] == "closed"
    after = httpx.get(f"{base}/v1/reviews", params={"limit": 200}, headers=bearer("analyst")).json()
    assert target not in [c["customer_id"] for c in after["cases"]] and after["total"] == queue["total"] - 1
    closed = httpx.get(f"{base}/v1/reviews", params={"status": "closed", "limit": 200},
                       headers=bearer("analyst")).json()
    assert any(c["customer_id"] == target and c["outcome"] == outcome for c in closed["cases"])
    assert httpx.post(f"{base}/v1/reviews/nobody", json={"outcome": "fraud"},
                      headers=bearer("analyst")).status_code == 404
    bad = httpx.post(f"{base}/v1/reviews/{target}", json={"outcome": "maybe"}, headers=bearer("analyst"))
    assert bad.status_code == 422 and "outcome" in bad.json()["error"]["message"]

    # the next labels run takes the analyst's outcome first
    now_ms = int(time.time() * 1000)
    run_labels(store, now_ms, tmp_path / "labels", settings)
    props = customer_properties(store, target)
    assert props["clean_label"] == outcome and props["label_source"] == "analyst"


def test_reviews_are_attributable_and_bounded_to_the_queue(api, settings, caplog):
    """Every outcome names its actor (the token's name, never the token) in an append-only log; outside
    the open queue only a token with the override scope may record one."""
    base, store, ref, _ = api
    customers = ref["customers"]
    valuable = list(customers.loc[pd.to_numeric(customers["lifetime_value"]) >= settings.rules.value_cut,
                                  "customer_id"].iloc[40:42])
    httpx.post(f"{base}/v1/score", json={"customer_ids": valuable}, headers=bearer("all"))
    queued, outsider = valuable[0], list(customers["customer_id"].iloc[60:61])[0]
    store.upsert_customers(CustomerUpsert.many({outsider: {"decision": "block"}}))
    caplog.set_level(logging.INFO, logger="fraudgraph.api.reviews")
    assert httpx.post(f"{base}/v1/reviews/{queued}", json={"outcome": "fraud", "note": "card 4111 1111 1111 1111"},
                      headers=bearer("analyst")).status_code == 200
    refused = httpx.post(f"{base}/v1/reviews/{outsider}", json={"outcome": "legit"}, headers=bearer("analyst"))
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_in_queue"
    # a closed case is outside the queue too; the lead's override records it
    assert httpx.post(f"{base}/v1/reviews/{queued}", json={"outcome": "legit"},
                      headers=bearer("analyst")).status_code == 409
    assert httpx.post(f"{base}/v1/reviews/{queued}", json={"outcome": "legit"},
                      headers=bearer("all")).status_code == 200
    history = httpx.get(f"{base}/v1/reviews/{queued}/history", headers=bearer("analyst")).json()["entries"]
    assert [(e["outcome"], e["actor"], e["override"], e["previous_decision"]) for e in history] == [
        ("fraud", "alice", False, "review"), ("legit", "lead", True, "review")]
    assert history[1]["previous_outcome"] == "fraud" and history[0]["note"] == "card [card]"
    assert httpx.get(f"{base}/v1/reviews/{outsider}/history", headers=bearer("analyst")).json()["entries"] == []
    assert httpx.get(f"{base}/v1/reviews/{queued}/history", headers=bearer("reader")).status_code == 403
    assert f"review outcome fraud for customer {queued} by alice" in caplog.text
    assert "analyst" not in caplog.text and "Bearer" not in caplog.text  # the actor's name, never its token
    assert customer_properties(store, queued)["review_actor"] == "lead"


def test_auth_comes_before_the_body_and_bodies_are_bounded(api):
    """A request without a valid token is refused from its headers (401, nothing of the body read); a
    body above api.max_body_bytes gets 413; hostile JSON gets 401 without a token."""
    import socket
    from urllib.parse import urlparse

    base, *_ = api
    url = urlparse(base)
    big = 31 * 1024 * 1024
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(f"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {big}\r\n\r\n".encode())
        sock.sendall(b"[" * 65536)  # a first slice of the body; the answer comes without the rest
        answer = ""
        while "unauthorized" not in answer:  # headers and body may come in separate packets
            chunk = sock.recv(4096).decode()
            if not chunk:
                break
            answer += chunk
    assert answer.startswith("HTTP/1.1 401") and "unauthorized" in answer
    nested = httpx.post(f"{base}/v1/score", content=b"[" * 100_000, headers={"Content-Type": "application/json"})
    assert nested.status_code == 401
    too_big = httpx.post(f"{base}/v1/score", content=b" " * (2 * 1024 * 1024),
                         headers={**bearer("scorer"), "Content-Type": "application/json"})
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "too_large"

    def chunks():
        for _ in range(40):
            yield b" " * 65536

    chunked = httpx.post(f"{base}/v1/score", content=chunks(), headers={**bearer("scorer"),
                                                                        "Content-Type": "application/json"})
    assert chunked.status_code == 413


def test_openapi_fuzzing_finds_no_server_error_or_schema_break(api):
    """schemathesis over the OpenAPI document: every operation, generated inputs, a token with every scope."""
    import schemathesis
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings

    base, *_ = api
    document = httpx.get(f"{base}/openapi.json").json()
    for model in ("CustomerOut", "ScoreRequest", "ReviewRequest", "ErrorResponse"):
        assert model in document["components"]["schemas"]
    schemathesis.experimental.OPEN_API_3_1.enable()  # FastAPI writes OpenAPI 3.1
    schema = schemathesis.from_dict(document, base_url=base)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "GET /v1/customers/{customer_id}", "GET /v1/customers/{customer_id}/neighbourhood", "GET /v1/lookup",
        "POST /v1/score", "GET /v1/reviews", "POST /v1/reviews/{customer_id}", "GET /healthz", "GET /readyz"}
    for op in operations:
        @hsettings(max_examples=25, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                          HealthCheck.function_scoped_fixture])
        @given(case=op.as_strategy())
        def check(case):
            response = case.call(headers={"Authorization": "Bearer all"})
            # called at once below, in this iteration: op is the operation the case was drawn from
            label = f"{op.method} {op.path}"  # noqa: B023
            assert response.status_code < 500, f"{label}: {response.status_code} {response.text}"
            case.validate_response(response)

        check()


def _chromium():
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (binary and driver):
        pytest.skip("headless Chromium not installed (scripts/dev test installs Debian's chromium + chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.mark.browser
@pytest.mark.parametrize("bad_id", ["4111111111111111", "4111-1111-1111-1111", "jane@example.com", "a b"])
def test_a_card_number_or_email_as_customer_id_is_refused_and_never_echoed(api, bad_id):
    base, *_ = api
    for response in (httpx.get(f"{base}/v1/customers/{bad_id}", headers=bearer("reader")),
                     httpx.post(f"{base}/v1/score", json={"customer_ids": ["C000000001", bad_id]},
                                headers=bearer("scorer"))):
        assert response.status_code == 422 and bad_id not in response.text, response.text
    missing = httpx.get(f"{base}/v1/customers/C999999999", headers=bearer("reader"))
    assert missing.status_code == 404 and "C999999999" not in missing.text


def test_a_slow_request_body_gets_408_and_frees_the_worker(api):
    import socket

    base, *_ = api
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=BODY_TIMEOUT_S + 10) as sock:
        sock.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer scorer\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"customer_ids\"")
        started = time.monotonic()
        answer = sock.recv(4096).decode()
        waited = time.monotonic() - started
        while "\r\n\r\n" in answer and "api.body_timeout_s" not in answer:  # the body may come in its own segment
            more = sock.recv(4096).decode()
            if not more:
                break
            answer += more
    assert answer.startswith("HTTP/1.1 408") and "api.body_timeout_s" in answer
    assert BODY_TIMEOUT_S - 0.5 <= waited < BODY_TIMEOUT_S + 5
    assert httpx.get(f"{base}/healthz").status_code == 200


def test_review_console_in_headless_chromium(api, settings):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, store, ref, _ = api
    customers = ref["customers"]
    valuable = list(customers.loc[pd.to_numeric(customers["lifetime_value"]) >= settings.rules.value_cut,
                                  "customer_id"].iloc[40:46])
    assert httpx.post(f"{base}/v1/score", json={"customer_ids": valuable}, headers=bearer("all")).status_code == 200
    browser = _chromium()
    try:
        wait = WebDriverWait(browser, 20)

        def until(condition, what):
            try:
                return wait.until(condition)
            except TimeoutException:
                status = browser.find_element(By.ID, "status").text
                raise AssertionError(f"{what}: timed out; the page says {status!r}") from None

        browser.get(f"{base}/console")
        browser.find_element(By.ID, "token").send_keys("analyst")
        browser.find_element(By.ID, "save-token").click()
        until(lambda b: b.find_elements(By.CSS_SELECTOR, "#queue tbody tr"), "the queue shows")
        rows = browser.find_elements(By.CSS_SELECTOR, "#queue tbody tr")
        queued = [r.get_attribute("data-customer") for r in rows]
        target = queued[0]
        rows[0].click()
        until(ec.visibility_of_element_located((By.ID, "case")), "the case opens")
        until(lambda b: b.find_element(By.ID, "case-id").text == target, "the case shows the customer")
        assert "HIGH_SCORE" in browser.find_element(By.ID, "case-codes").text
        # the neighbourhood is drawn: the customer, its identifiers and their customers
        assert browser.find_elements(By.CSS_SELECTOR, "#graph circle.centre")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#graph rect.identifier")) == len(store.identity(target))
        browser.find_element(By.ID, "note").send_keys("two accounts, one passport")
        browser.find_element(By.ID, "outcome-fraud").click()
        until(lambda b: "recorded fraud" in b.find_element(By.ID, "status").text, "the outcome is recorded")
        until(lambda b: target not in [r.get_attribute("data-customer")
                                       for r in b.find_elements(By.CSS_SELECTOR, "#queue tbody tr")],
              "the case leaves the queue")
    finally:
        browser.quit()
    props = customer_properties(store, target)
    assert props["review_outcome"] == "fraud" and props["review_note"] == "two accounts, one passport"
