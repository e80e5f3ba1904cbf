"""Neptune IAM auth, checked locally: a loopback proxy in front of the real Gremlin Server verifies each
WebSocket handshake's SigV4 signature with the published algorithm (written here from the spec, not with
botocore) and refuses unsigned or wrongly signed handshakes."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import threading

import pytest

from fraudgraph.graph import CustomerUpsert, GraphStoreError, customer_properties, open_graph

AKID, SECRET, TOKEN, REGION = "AKIDFRAUDGRAPHTEST", "test-secret-not-real", "session-token-1", "eu-west-1"
pytestmark = [pytest.mark.slow, pytest.mark.gremlin]


def sigv4_problem(method: str, path: str, query: str, headers) -> str | None:
    """None when ``headers`` carry a valid SigV4 signature for neptune-db (AWS Signature Version 4:
    canonical request -> string to sign -> HMAC key chain), else why not."""
    auth = headers.get("Authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "unsigned"
    fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 ") :].split(","))
    akid, day, region, service, terminator = fields["Credential"].split("/")
    if (akid, region, service, terminator) != (AKID, REGION, "neptune-db", "aws4_request"):
        return "credential scope"
    signed = fields["SignedHeaders"].split(";")
    if not {"host", "x-amz-date"} <= set(signed):
        return "host and x-amz-date must be signed"
    amz_date = headers["X-Amz-Date"]
    age = dt.datetime.now(dt.UTC) - dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
        tzinfo=dt.UTC)
    if abs(age.total_seconds()) > 300:
        return "stale"
    canonical_headers = "".join(f"{h}:{' '.join(headers[h].split())}\n" for h in signed)
    canonical = "\n".join([method, path, query, canonical_headers, ";".join(signed), hashlib.sha256(b"").hexdigest()])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, f"{day}/{region}/{service}/aws4_request",
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = hmac.new(f"AWS4{SECRET}".encode(), day.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), fields["Signature"]):
        return "signature"
    if headers.get("X-Amz-Security-Token") != TOKEN or "x-amz-security-token" not in signed:
        return "session token"
    return None


@pytest.fixture(scope="module")
def iam_proxy(gremlin_server):
    """``(url, counters)`` of a verifying WebSocket proxy to the Gremlin Server."""
    from aiohttp import ClientSession, WSMsgType, web

    from localservers import free_port

    counters = {"accepted": 0, "refused": []}

    async def handler(request):
        problem = sigv4_problem(request.method, request.path, request.query_string, request.headers)
        if problem:
            counters["refused"].append(problem)
            return web.Response(status=403, text=problem)
        counters["accepted"] += 1
        client = web.WebSocketResponse(max_msg_size=0)
        await client.prepare(request)
        async with ClientSession() as session, session.ws_connect(gremlin_server.url, max_msg_size=0) as upstream:

            async def pump(src, dst):
                async for msg in src:
                    if msg.type == WSMsgType.BINARY:
                        await dst.send_bytes(msg.data)
                    elif msg.type == WSMsgType.TEXT:
                        await dst.send_str(msg.data)
                    else:
                        break

            tasks = [asyncio.create_task(pump(client, upstream)), asyncio.create_task(pump(upstream, client))]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in tasks:
                t.cancel()
        return client

    port = free_port()
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_get("/gremlin", handler)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{port}/gremlin", counters
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    for name, value in {"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": TOKEN,
                        "AWS_REGION": REGION, "AWS_CONFIG_FILE": str(tmp_path / "none"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                        "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)


def iam_settings(settings, iam: bool):
    gremlin = settings.graph.gremlin.model_copy(update={"iam": iam, "max_retries": 1, "backoff_initial_s": 0.05})
    return settings.model_copy(update={"graph": settings.graph.model_copy(update={"gremlin": gremlin})})


def test_signed_handshakes_pass_and_the_graph_works_through_the_proxy(iam_proxy, aws_env, settings):
    url, counters = iam_proxy
    with open_graph(url, iam_settings(settings, True)) as store:
        store.upsert_customers([CustomerUpsert("IAM1", {"signup_ts": 1, "lifetime_value": 5.0})])
        assert customer_properties(store, "IAM1")["lifetime_value"] == 5.0
    assert counters["accepted"] >= 1 and not counters["refused"]


def test_unsigned_and_wrongly_signed_handshakes_are_refused(iam_proxy, aws_env, settings, monkeypatch):
    url, counters = iam_proxy
    with pytest.raises(GraphStoreError), open_graph(url, iam_settings(settings, False)) as store:  # iam off: unsigned
        customer_properties(store, "IAM1")
    assert "unsigned" in counters["refused"]
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "a-wrong-secret")
    with pytest.raises(GraphStoreError), open_graph(url, iam_settings(settings, True)) as store:
        customer_properties(store, "IAM1")
    assert "signature" in counters["refused"]
