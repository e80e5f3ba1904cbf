"""Gremlin Server (TinkerGraph) and JanusGraph Server on loopback, with the YAML, properties and schema
script the project keeps in ``conf/``."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import yaml

from fraudgraph.config import CONF_DIR, Settings
from localservers.java import JavaServer, absolute_state_dir, resolve_maven_classpath, servers_cache

log = logging.getLogger(__name__)


class GremlinServer(JavaServer):
    """Apache TinkerPop Gremlin Server with a TinkerGraph bound to traversal source ``g``."""

    MAIN = "org.apache.tinkerpop.gremlin.server.GremlinServer"
    NAME = "gremlin-server"

    def __init__(
        self,
        settings: Any,  # GremlinServerSettings, or JanusGraphServerSettings for the subclass
        *,
        state_dir: str | Path | None = None,
        port: int | None = None,
    ):
        state = absolute_state_dir(state_dir or settings.state_dir)
        super().__init__(
            self.NAME, state, settings.host, port or settings.port, settings.start_timeout_s, settings.heap
        )
        self.settings = settings

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/gremlin"

    @staticmethod
    def store_settings(settings: Settings) -> Settings:
        """The settings a fraudgraph store on this engine uses: TinkerGraph takes them as they are."""
        return settings

    def lib_dir(self) -> Path:
        # Jars are shared between state folders: resolve once per version.
        return resolve_maven_classpath(
            CONF_DIR / "servers" / "gremlin-server.pom.xml",
            servers_cache() / f"gremlin-server-{self.settings.tinkerpop_version}",
            {"tinkerpop.version": self.settings.tinkerpop_version},
        )

    def prepare(self) -> tuple[list[str], str, list[str]]:
        lib = self.lib_dir()
        config = yaml.safe_load((CONF_DIR / "gremlin-server.yaml").read_text())
        config["host"] = self.host
        config["port"] = self.port
        props = (
            (CONF_DIR / "tinkergraph.properties")
            .read_text()
            .replace(
                "defaultVertexPropertyCardinality=single",
                f"defaultVertexPropertyCardinality={self.settings.vertex_property_cardinality}",
            )
        )
        if self.settings.persist:
            data = self.state_dir / "data"
            data.mkdir(exist_ok=True)
            # GraphSON rather than Gryo: Gryo's Kryo reflection needs --add-opens on Java 17.
            props += (
                f"\ngremlin.tinkergraph.graphLocation={data / 'graph.json'}\ngremlin.tinkergraph.graphFormat=graphson\n"
            )
        graph_props = self.state_dir / "tinkergraph.properties"
        graph_props.write_text(props)
        config["graphs"] = {"graph": str(graph_props)}
        return [str(lib / "*")], self.MAIN, [str(self._write_runtime_config(config))]

    def init_scripts(self) -> list[Path]:
        """Groovy scripts the server runs at start, in order."""
        return [CONF_DIR / "gremlin-server-init.groovy"]

    def _write_runtime_config(self, config: dict) -> Path:
        """The server YAML with the init scripts (the last binds ``g`` to the graph named ``graph``)."""
        plugins = config["scriptEngines"]["gremlin-groovy"]["plugins"]
        plugins["org.apache.tinkerpop.gremlin.jsr223.ScriptFileGremlinPlugin"] = {
            "files": [str(p) for p in self.init_scripts()]
        }
        runtime = self.state_dir / f"{self.NAME}.yaml"
        runtime.write_text(yaml.safe_dump(config, sort_keys=False))
        return runtime

    def jvm_options(self) -> list[str]:
        # The module openings TinkerPop's own start script passes on Java 11+.
        opens = [
            f"--add-opens=java.base/{pkg}=ALL-UNNAMED"
            for pkg in (
                "java.io",
                "java.lang",
                "java.lang.invoke",
                "java.lang.reflect",
                "java.net",
                "java.nio",
                "java.util",
                "java.util.concurrent",
                "java.util.concurrent.atomic",
                "java.time",
            )
        ]
        # the parallel collector: a graph server allocates for every traversal, and its young collections
        # run on both cores (the serial collector uses one; docs/decisions.md)
        base = ["-XX:+UseParallelGC" if o == "-XX:+UseSerialGC" else o for o in super().jvm_options()]
        if not self.settings.quick_jit:  # full JIT: slower start, faster traversals once warm
            base = [o for o in base if not o.startswith("-XX:TieredStopAtLevel")]
        return [*base, *opens, f"-Dlog4j.configuration=file:{CONF_DIR / 'servers' / 'log4j-server.properties'}"]

    def ready(self) -> bool:
        return gremlin_answers(self.url)


class JanusGraphServer(GremlinServer):
    """JanusGraph Server (``janusgraph_server.storage``: in memory, or on a Cassandra over CQL; custom string
    vertex ids) with traversal source ``g``: a Gremlin Server with JanusGraph's jars and graph; URL,
    readiness and JVM options are the Gremlin Server's."""

    MAIN = "org.janusgraph.graphdb.server.JanusGraphServer"
    NAME = "janusgraph-server"

    def __init__(
        self,
        settings: Any,  # JanusGraphServerSettings
        *,
        state_dir: str | Path | None = None,
        port: int | None = None,
        cql: tuple[str, int] | None = None,
    ):
        """``cql``: the Cassandra (host, CQL port) a server with ``storage: cql`` keeps its graph in."""
        super().__init__(settings, state_dir=state_dir, port=port)
        if settings.storage == "cql" and cql is None:
            raise ValueError("janusgraph_server.storage: cql needs the Cassandra to store in (cql=(host, port))")
        self.cql = cql

    def lib_dir(self) -> Path:
        return resolve_maven_classpath(
            CONF_DIR / "servers" / "janusgraph-server.pom.xml",
            servers_cache() / f"janusgraph-server-{self.settings.janusgraph_version}",
            {"janusgraph.version": self.settings.janusgraph_version},
        )

    @staticmethod
    def store_settings(settings: Settings) -> Settings:
        """JanusGraph refuses user-supplied edge ids: a store on it lets the engine name edges
        (``graph.gremlin.edge_ids: engine``)."""
        gremlin = settings.graph.gremlin.model_copy(update={"edge_ids": "engine"})
        return settings.model_copy(update={"graph": settings.graph.model_copy(update={"gremlin": gremlin})})

    def init_scripts(self) -> list[Path]:
        return [self._write_schema_script(), *super().init_scripts()]

    def _write_schema_script(self) -> Path:
        """A start-up script declaring fraudgraph's vertex labels, edge labels and the properties every link
        write carries, before the first request. JanusGraph creates a missing type on first use, and
        concurrent first uses race: the loser fails with lock contention, and on the in-memory backend a
        half-created type can fail every retry (seen with four writers on a fresh graph). Customer
        attributes are still created on first use, by one writer: the store writes a batch's first chunk
        alone. Property keys are declared as the default schema maker would make them (any value type,
        single cardinality)."""
        from fraudgraph.graph.elements import LINK_FRAME_COLUMNS
        from fraudgraph.graph.gremlin import SUMMARY, SUMMARY_VERSION
        from fraudgraph.schema import CUSTOMER, EDGE_LABEL_BY_KIND, IDENTIFIER_KINDS

        def groovy_list(names) -> str:
            return "[" + ", ".join(f"'{n}'" for n in names) + "]"

        keys = ["value_hash", *LINK_FRAME_COLUMNS[3:], SUMMARY, SUMMARY_VERSION]
        script = self.state_dir / "fraudgraph-schema.groovy"
        script.write_text(
            "// Written by localservers.gremlin.JanusGraphServer: fraudgraph's schema, declared at start\n"
            "// (retried: on distributed storage the schema's own lock can be contended at start).\n"
            "def declared = false\n"
            "for (int attempt = 0; attempt < 10 && !declared; attempt++) {\n"
            "def mgmt = graph.openManagement()\n"
            "try {\n"
            f"{groovy_list([CUSTOMER, *IDENTIFIER_KINDS])}.each {{ if (!mgmt.containsVertexLabel(it)) "
            "mgmt.makeVertexLabel(it).make() }\n"
            f"{groovy_list(EDGE_LABEL_BY_KIND.values())}.each {{ if (!mgmt.containsEdgeLabel(it)) "
            "mgmt.makeEdgeLabel(it).make() }\n"
            f"{groovy_list(keys)}.each {{ if (!mgmt.containsPropertyKey(it)) "
            "mgmt.makePropertyKey(it).dataType(Object.class).cardinality(org.janusgraph.core.Cardinality.SINGLE)"
            ".make() }\n"
            # concurrent bumps of one vertex's summary version conflict (one retries) instead of both
            # landing: the compare-and-set of the summary protocol needs every bump to move the version
            f"mgmt.setConsistency(mgmt.getPropertyKey('{SUMMARY_VERSION}'), "
            "org.janusgraph.core.schema.ConsistencyModifier.LOCK)\n"
            "mgmt.commit()\n"
            "declared = true\n"
            "} catch (Exception e) { if (mgmt.isOpen()) mgmt.rollback(); Thread.sleep(500) }\n"
            "}\n"
            "if (!declared) throw new IllegalStateException('fraudgraph schema not declared after 10 attempts')\n"
        )
        return script

    def prepare(self) -> tuple[list[str], str, list[str]]:
        lib = self.lib_dir()
        config = yaml.safe_load((CONF_DIR / "janusgraph" / "janusgraph-server.yaml").read_text())
        config["host"], config["port"] = self.host, self.port
        if self.settings.storage == "cql" and self.cql is not None:
            props = (CONF_DIR / "janusgraph" / "janusgraph-cql-local.properties").read_text()
            host, port = self.cql
            keyspace = self.settings.cql_keyspace
            props += f"\nstorage.hostname={host}\nstorage.port={port}\nstorage.cql.keyspace={keyspace}\n"
            graph_props = self.state_dir / "janusgraph.properties"
            graph_props.write_text(props)
        else:
            graph_props = CONF_DIR / "janusgraph" / "janusgraph-inmemory.properties"
        config["graphs"] = {"graph": str(graph_props)}
        return [str(lib / "*")], self.MAIN, [str(self._write_runtime_config(config))]


def gremlin_answers(url: str, timeout_s: float = 5.0) -> bool:
    """True when a Gremlin endpoint answers a traversal."""
    from gremlin_python.driver.driver_remote_connection import DriverRemoteConnection
    from gremlin_python.process.anonymous_traversal import traversal

    conn = None
    try:
        conn = DriverRemoteConnection(url, "g", pool_size=1)
        traversal().with_remote(conn).V().limit(1).count().next()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not answering yet"
        return False
    finally:
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
