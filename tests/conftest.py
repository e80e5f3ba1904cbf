"""Shared fixtures: a real Gremlin Server on loopback for the session, graph stores per backend."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from fraudgraph.config import load_settings

# Tests never depend on a developer's environment overrides or real key.
for _name in list(os.environ):
    if _name.startswith("FRAUDGRAPH_") and _name not in ("FRAUDGRAPH_SERVERS_CACHE", "FRAUDGRAPH_CONF_DIR"):
        del os.environ[_name]
os.environ["FRAUDGRAPH_PII_KEY"] = "test-key-not-secret"
if os.environ.get("PYTEST_XDIST_WORKER"):  # two workers on two cores: one compute thread each, children too
    for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, "1")
    os.environ["FRAUDGRAPH_TRAINING__THREADS"] = "1"
# training runs are tracked: into a registry of the session's own, never the working directory's models/
os.environ["FRAUDGRAPH_REGISTRY__DIR"] = tempfile.mkdtemp(prefix="fraudgraph-registry-")


# the local servers a test session starts (each once per pytest-xdist worker that asks for it)
SERVER_FIXTURES = {"gremlin_server", "gremlin_server_set", "cassandra_server", "janusgraph_server",
                   "janusgraph_cql_server", "kafka_server", "sqs_server"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    """Groups for pytest-xdist's ``--dist loadgroup`` (``scripts/dev test`` runs two workers): every module
    with a test that talks to a local server runs on one worker, so each server starts once and Maven
    resolves its jars once (never two Maven runs on one local repository); every other module stays
    whole on one worker, so its module fixtures are built once."""
    modules: dict[str, list] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    for module, tests in modules.items():
        servers = any(t.get_closest_marker("gremlin") or SERVER_FIXTURES & set(t.fixturenames) for t in tests)
        for t in tests:
            t.add_marker(pytest.mark.xdist_group("servers" if servers else module))


@pytest.fixture(scope="session")
def settings():
    return load_settings(environ={})


@pytest.fixture(scope="session")
def gremlin_server(tmp_path_factory, settings):
    """A real Apache TinkerPop Gremlin Server (TinkerGraph) on a free loopback port."""
    from localservers import GremlinServer, free_port

    state = tmp_path_factory.mktemp("gremlin-server")
    server = GremlinServer(settings.gremlin_server, state_dir=state, port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gremlin_server_set(tmp_path_factory, settings):
    """A second Gremlin Server whose TinkerGraph defaults to ``set`` vertex-property cardinality, as
    Amazon Neptune does: a write that does not state its cardinality adds a value instead of replacing."""
    from localservers import GremlinServer, free_port

    neptune_like = settings.gremlin_server.model_copy(update={"vertex_property_cardinality": "set",
                                                              "persist": False})
    server = GremlinServer(neptune_like, state_dir=tmp_path_factory.mktemp("gremlin-server-set"), port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cassandra_server(tmp_path_factory, settings):
    """A real single-node Apache Cassandra on free loopback ports: JanusGraph's production storage."""
    from localservers import CassandraServer, free_port

    server = CassandraServer(settings.cassandra_server, state_dir=tmp_path_factory.mktemp("cassandra"),
                             port=free_port(), storage_port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def janusgraph_server(tmp_path_factory, settings):
    """A real JanusGraph Server with in-memory storage (several worker threads) on a free loopback port."""
    from localservers import JanusGraphServer, free_port

    cfg = settings.janusgraph_server.model_copy(update={"storage": "inmemory"})
    server = JanusGraphServer(cfg, state_dir=tmp_path_factory.mktemp("janusgraph"), port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def janusgraph_cql_server(tmp_path_factory, settings, cassandra_server):
    """A real JanusGraph Server (several worker threads) on a free loopback port, its graph on the real
    Cassandra (CQL storage, as JanusGraph runs in production)."""
    from localservers import JanusGraphServer, free_port

    cfg = settings.janusgraph_server.model_copy(update={"storage": "cql", "cql_keyspace": "fraudgraph_tests"})
    server = JanusGraphServer(cfg, state_dir=tmp_path_factory.mktemp("janusgraph-cql"), port=free_port(),
                              cql=(cassandra_server.host, cassandra_server.port))
    server.start()
    yield server
    server.stop()


def janusgraph_settings(settings):
    """Settings for a store on JanusGraph: the engine names the edges."""
    from localservers import JanusGraphServer

    return JanusGraphServer.store_settings(settings)


def make_store(kind: str, tmp_path: Path, settings, request):
    from fraudgraph.graph import open_graph

    if kind == "sqlite":
        return open_graph(f"sqlite:///{tmp_path / 'graph.db'}", settings)
    if kind in ("janusgraph", "janusgraph_cql"):
        server = request.getfixturevalue("janusgraph_cql_server" if kind == "janusgraph_cql" else "janusgraph_server")
        store = open_graph(server.url, janusgraph_settings(settings))
        store.clear()
        return store
    server = request.getfixturevalue("gremlin_server_set" if kind == "gremlin_set" else "gremlin_server")
    store = open_graph(server.url, settings)
    store.clear()
    return store


@pytest.fixture(params=["sqlite", pytest.param("gremlin", marks=[pytest.mark.slow, pytest.mark.gremlin]),
                        pytest.param("gremlin_set", marks=[pytest.mark.slow, pytest.mark.gremlin]),
                        pytest.param("janusgraph", marks=[pytest.mark.slow, pytest.mark.gremlin])])
def store(request, tmp_path, settings):
    """An empty identity graph on each backend (JanusGraph in memory; the graph contract suite runs it on
    the real Cassandra, tests/unit/graph/test_graph_contract.py)."""
    s = make_store(request.param, tmp_path, settings, request)
    yield s
    s.close()


@pytest.fixture(params=["sqlite", pytest.param("gremlin", marks=[pytest.mark.slow, pytest.mark.gremlin])])
def store_factory(request, tmp_path, settings):
    """Open a second, empty store of the same backend (for round trips)."""
    opened = []

    def factory(name: str = "other"):
        if request.param == "sqlite":
            from fraudgraph.graph import open_graph

            s = open_graph(f"sqlite:///{tmp_path / (name + '.db')}", settings)
        else:
            s = make_store("gremlin", tmp_path, settings, request)
        opened.append(s)
        return s

    yield factory
    for s in opened:
        s.close()


@pytest.fixture(scope="session")
def spark(settings):
    """One local Spark session for the whole test run (UI off, 1 shuffle partition, loopback)."""
    from etl.spark_session import build_spark_session

    spark_settings = settings.spark.model_copy(update={
        "master": "local[2]", "shuffle_partitions": 1,
        "driver_java_options": settings.spark.driver_java_options + " -XX:TieredStopAtLevel=1"})
    session = build_spark_session(spark_settings)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def small_world(tmp_path_factory, settings):
    """A generated world of 3,000 customers shared by the tests that only read it."""
    from fraudgraph.synthetic.world import WorldGenerator

    out = tmp_path_factory.mktemp("small-world")
    WorldGenerator(settings.world.model_copy(update={"customers": 3000, "chunk_customers": 1500})).generate(
        out, progress=False)
    return out


@pytest.fixture
def small_world_graph(small_world, tmp_path, settings):
    """The small world loaded into a fresh embedded graph (pandas reference aggregates, no Spark).

    Returns ``(graph URI, cut-off ISO time)``.
    """
    import json

    from etl.reference import reference_etl
    from fraudgraph.event_tags import EventTagger
    from fraudgraph.graph import open_graph
    from fraudgraph.identity import IdentifierHasher

    from testing_support import frames_to_elements

    ref = reference_etl(small_world, IdentifierHasher.from_settings(settings.privacy), EventTagger(settings.event_tags))
    uri = f"sqlite:///{tmp_path / 'small-world.db'}"
    with open_graph(uri, settings) as store:
        customers, links = frames_to_elements(ref["customers"], ref["links"])
        store.upsert_customers(customers)
        store.upsert_links(links)
    return uri, json.loads((small_world / "manifest.json").read_text())["cutoff"]


@pytest.fixture(scope="session")
def small_world_snapshot(small_world, tmp_path_factory, settings):
    """The small world's snapshot folder as the ETL writes it (pandas reference aggregates, link events)."""
    from etl.reference import reference_etl
    from fraudgraph.event_tags import EventTagger
    from fraudgraph.graph.snapshot import write_snapshot
    from fraudgraph.identity import IdentifierHasher

    ref = reference_etl(small_world, IdentifierHasher.from_settings(settings.privacy), EventTagger(settings.event_tags))
    out = tmp_path_factory.mktemp("small-world-snapshot")
    write_snapshot(ref["customers"], ref["links"], out, link_events=ref["link_events"])
    return out


@pytest.fixture(scope="session")
def kafka_server(tmp_path_factory, settings):
    """A real single-node KRaft Apache Kafka on free loopback ports."""
    from localservers import KafkaServer, free_port

    server = KafkaServer(settings.kafka_server, state_dir=tmp_path_factory.mktemp("kafka"), port=free_port(),
                         controller_port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sqs_server(tmp_path_factory, settings):
    """A real ElasticMQ (SQS-compatible) server on a free loopback port."""
    from localservers import ElasticMQServer, free_port

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local-test")  # ElasticMQ accepts any credentials
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local-test")
    os.environ.setdefault("AWS_REGION", "elasticmq")
    server = ElasticMQServer(settings.sqs_server, state_dir=tmp_path_factory.mktemp("elasticmq"), port=free_port())
    server.start()
    yield server
    server.stop()
