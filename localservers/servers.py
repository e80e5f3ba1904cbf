"""Local Java servers on loopback (Gremlin Server now; brokers reuse the same machinery).

Jars are resolved from Maven Central with a small pom kept in ``conf/servers/``
(``mvn dependency:copy-dependencies`` into a git-ignored state folder; Maven's
``~/.m2`` caches them, so a second resolution needs no network). Each server
runs as a background process in its own session with a pid file and a log
file under its state folder, so it outlives the command that started it and
``stop`` finds it again.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from fraudgraph.config import CONF_DIR

log = logging.getLogger(__name__)


class ServerError(RuntimeError):
    """A local server could not be resolved, started or stopped."""


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A currently unused TCP port on ``host``."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child counts as dead
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return True


def servers_cache() -> Path:
    """Where resolved server jars are kept, shared by every checkout (``FRAUDGRAPH_SERVERS_CACHE``)."""
    return Path(os.environ.get("FRAUDGRAPH_SERVERS_CACHE", Path.home() / ".cache" / "fraudgraph" / "servers"))


def absolute_state_dir(state_dir: str | Path) -> Path:
    """A server's state folder; relative paths are taken from the working directory."""
    state = Path(state_dir)
    return state if state.is_absolute() else Path.cwd() / state


def resolve_maven_classpath(pom: Path, lib_dir: Path, properties: dict[str, str]) -> Path:
    """Copy the pom's dependencies into ``lib_dir`` once per property set; returns ``lib_dir``."""
    marker = lib_dir / ".resolved"
    wanted = yaml.safe_dump({"pom": pom.read_text(), "properties": properties})
    if marker.exists() and marker.read_text() == wanted:
        return lib_dir
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServerError("Maven (mvn) is needed to resolve the server jars; install Maven 3")
    if lib_dir.exists():
        shutil.rmtree(lib_dir)
    lib_dir.mkdir(parents=True)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={lib_dir}",
        *(f"-D{k}={v}" for k, v in properties.items()),
    ]
    log.info("resolving server jars from %s", pom.name)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ServerError(f"maven failed to resolve {pom.name}:\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}")
    marker.write_text(wanted)
    return lib_dir


@dataclass
class JavaServer:
    """A Java server started from a resolved classpath and a main class."""

    name: str
    state_dir: Path
    host: str
    port: int
    start_timeout_s: float
    heap: str = "512m"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "server.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "server.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    # Subclasses provide these three.
    def prepare(self) -> tuple[list[str], str, list[str]]:  # pragma: no cover - abstract
        """Return (classpath entries, main class, program args) after rendering config."""
        raise NotImplementedError

    def ready(self) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def jvm_options(self) -> list[str]:
        return [f"-Xmx{self.heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.net.preferIPv4Stack=true"]

    def status(self) -> dict:
        pid = self.pid()
        return {
            "server": self.name,
            "running": pid is not None,
            "pid": pid,
            "answering": bool(pid) and port_open(self.host, self.port) and self.ready(),
            "host": self.host,
            "port": self.port,
            "log": str(self.log_file),
        }

    def start(self) -> dict:
        """Start in the background and wait until it answers; a running server is left as it is."""
        if self.pid() is not None:
            self._wait_ready(self.pid())
            return self.status()
        if port_open(self.host, self.port):
            raise ServerError(f"{self.name}: port {self.host}:{self.port} is already taken by another process")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        classpath, main, args = self.prepare()
        java = shutil.which("java")
        if java is None:
            raise ServerError("Java 17 is needed to run the local servers")
        cmd = [java, *self.jvm_options(), "-cp", os.pathsep.join(classpath), main, *args]
        with open(self.log_file, "ab") as logfh:
            proc = subprocess.Popen(
                cmd,
                stdout=logfh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.state_dir,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        log.info("%s starting (pid %d), log %s", self.name, proc.pid, self.log_file)
        self._wait_ready(proc.pid, proc)
        return self.status()

    def _wait_ready(self, pid: int, proc: subprocess.Popen | None = None) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None or not _pid_alive(pid):
                tail = self.log_file.read_text(errors="replace")[-3000:] if self.log_file.exists() else ""
                raise ServerError(f"{self.name} exited during start-up; log tail:\n{tail}")
            if port_open(self.host, self.port) and self.ready():
                log.info("%s answering on %s:%d", self.name, self.host, self.port)
                return
            time.sleep(0.5)
        raise ServerError(f"{self.name} did not answer within {self.start_timeout_s:.0f}s; see {self.log_file}")

    def stop(self, timeout_s: float = 60) -> dict:
        """SIGTERM (clean shutdown, graph persisted), then SIGKILL after ``timeout_s``."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return self.status()
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _pid_alive(pid):
            log.warning("%s did not stop within %.0fs; killing", self.name, timeout_s)
            os.kill(pid, signal.SIGKILL)
            while _pid_alive(pid):
                time.sleep(0.1)
        try:  # reap it if it was our child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        self.pid_file.unlink(missing_ok=True)
        return self.status()

    def kill(self) -> None:
        """SIGKILL without a clean shutdown (for fault tests)."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            while _pid_alive(pid):
                time.sleep(0.05)
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        self.pid_file.unlink(missing_ok=True)


class GremlinServer(JavaServer):
    """Apache TinkerPop Gremlin Server with a TinkerGraph bound to traversal source ``g``."""

    MAIN = "org.apache.tinkerpop.gremlin.server.GremlinServer"
    NAME = "gremlin-server"

    def __init__(self, settings, *, state_dir: str | Path | None = None, port: int | None = None):
        state = absolute_state_dir(state_dir or settings.state_dir)
        super().__init__(
            self.NAME, state, settings.host, port or settings.port, settings.start_timeout_s, settings.heap
        )
        self.settings = settings

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/gremlin"

    @staticmethod
    def store_settings(settings):
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
        base = super().jvm_options()
        if not self.settings.quick_jit:  # full JIT: slower start, faster traversals once warm
            base = [o for o in base if not o.startswith("-XX:TieredStopAtLevel")]
        return [*base, *opens, f"-Dlog4j.configuration=file:{CONF_DIR / 'servers' / 'log4j-server.properties'}"]

    def ready(self) -> bool:
        return gremlin_answers(self.url)


class JanusGraphServer(GremlinServer):
    """JanusGraph Server (in-memory storage, custom string vertex ids) with traversal source ``g``: a Gremlin
    Server with JanusGraph's jars and graph; URL, readiness and JVM options are the Gremlin Server's."""

    MAIN = "org.janusgraph.graphdb.server.JanusGraphServer"
    NAME = "janusgraph-server"

    def lib_dir(self) -> Path:
        return resolve_maven_classpath(
            CONF_DIR / "servers" / "janusgraph-server.pom.xml",
            servers_cache() / f"janusgraph-server-{self.settings.janusgraph_version}",
            {"janusgraph.version": self.settings.janusgraph_version},
        )

    @staticmethod
    def store_settings(settings):
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
        from fraudgraph.graph.base import LINK_FRAME_COLUMNS
        from fraudgraph.graph.gremlin import SUMMARY, SUMMARY_VERSION
        from fraudgraph.schema import CUSTOMER, EDGE_LABEL_BY_KIND, IDENTIFIER_KINDS

        def groovy_list(names) -> str:
            return "[" + ", ".join(f"'{n}'" for n in names) + "]"

        keys = ["value_hash", *LINK_FRAME_COLUMNS[3:], SUMMARY, SUMMARY_VERSION]
        script = self.state_dir / "fraudgraph-schema.groovy"
        script.write_text(
            "// Written by localservers.servers.JanusGraphServer: fraudgraph's schema, declared at start.\n"
            "def mgmt = graph.openManagement()\n"
            f"{groovy_list([CUSTOMER, *IDENTIFIER_KINDS])}.each {{ if (!mgmt.containsVertexLabel(it)) "
            "mgmt.makeVertexLabel(it).make() }\n"
            f"{groovy_list(EDGE_LABEL_BY_KIND.values())}.each {{ if (!mgmt.containsEdgeLabel(it)) "
            "mgmt.makeEdgeLabel(it).make() }\n"
            f"{groovy_list(keys)}.each {{ if (!mgmt.containsPropertyKey(it)) "
            "mgmt.makePropertyKey(it).dataType(Object.class).cardinality(org.janusgraph.core.Cardinality.SINGLE)"
            ".make() }\n"
            "mgmt.commit()\n"
        )
        return script

    def prepare(self) -> tuple[list[str], str, list[str]]:
        lib = self.lib_dir()
        config = yaml.safe_load((CONF_DIR / "janusgraph" / "janusgraph-server.yaml").read_text())
        config["host"], config["port"] = self.host, self.port
        config["graphs"] = {"graph": str(CONF_DIR / "janusgraph" / "janusgraph-inmemory.properties")}
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
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass


class KafkaServer(JavaServer):
    """Apache Kafka as one KRaft node (broker and controller) on loopback."""

    MAIN = "kafka.Kafka"

    def __init__(
        self,
        settings,
        *,
        state_dir: str | Path | None = None,
        port: int | None = None,
        controller_port: int | None = None,
    ):
        state = absolute_state_dir(state_dir or settings.state_dir)
        super().__init__("kafka", state, settings.host, port or settings.port, settings.start_timeout_s, settings.heap)
        self.settings = settings
        self.controller_port = controller_port or settings.controller_port

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def lib_dir(self) -> Path:
        return resolve_maven_classpath(
            CONF_DIR / "servers" / "kafka.pom.xml",
            servers_cache() / f"kafka-{self.settings.kafka_version}",
            {"kafka.version": self.settings.kafka_version},
        )

    def prepare(self) -> tuple[list[str], str, list[str]]:
        import base64
        import uuid

        lib = self.lib_dir()
        data = self.state_dir / "data"
        h, p, c = self.host, self.port, self.controller_port
        props = (CONF_DIR / "servers" / "kafka-server.properties").read_text() + "\n".join(
            [
                "",
                f"controller.quorum.voters=1@{h}:{c}",
                f"listeners=PLAINTEXT://{h}:{p},CONTROLLER://{h}:{c}",
                f"advertised.listeners=PLAINTEXT://{h}:{p}",
                f"log.dirs={data}",
                "",
            ]
        )
        path = self.state_dir / "server.properties"
        path.write_text(props)
        if not (data / "meta.properties").exists():
            cluster = "-"
            while cluster.startswith("-"):  # as Kafka's Uuid.randomUuid: a leading '-' reads as an option
                cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            proc = subprocess.run(
                [
                    shutil.which("java") or "java",
                    "-cp",
                    str(lib / "*"),
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster,
                    "-c",
                    str(path),
                    "--ignore-formatted",
                ],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                raise ServerError(f"kafka storage format failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return [str(lib / "*")], self.MAIN, [str(path)]

    def ready(self) -> bool:
        try:
            from confluent_kafka.admin import AdminClient

            AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=2)
            return True
        except Exception:  # noqa: BLE001 - not answering yet
            return False


class ElasticMQServer(JavaServer):
    """ElasticMQ, an SQS-compatible queue server, on loopback."""

    MAIN = "org.elasticmq.server.Main"

    def __init__(self, settings, *, state_dir: str | Path | None = None, port: int | None = None):
        state = absolute_state_dir(state_dir or settings.state_dir)
        super().__init__(
            "elasticmq", state, settings.host, port or settings.port, settings.start_timeout_s, settings.heap
        )
        self.settings = settings

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def lib_dir(self) -> Path:
        return resolve_maven_classpath(
            CONF_DIR / "servers" / "elasticmq.pom.xml",
            servers_cache() / f"elasticmq-{self.settings.elasticmq_version}",
            {"elasticmq.version": self.settings.elasticmq_version},
        )

    def prepare(self) -> tuple[list[str], str, list[str]]:
        lib = self.lib_dir()
        conf = (CONF_DIR / "servers" / "elasticmq.conf").read_text() + (
            f'\nnode-address {{\n  protocol = http\n  host = "{self.host}"\n  port = {self.port}\n'
            '  context-path = ""\n}\n'
            f'rest-sqs {{\n  enabled = true\n  bind-port = {self.port}\n  bind-hostname = "{self.host}"\n'
            "  sqs-limits = strict\n}\n"
        )
        if self.settings.persist:  # queues and messages survive a restart
            conf += (
                f'queues-storage {{\n  enabled = true\n  path = "{self.state_dir / "queues.conf"}"\n}}\n'
                f'messages-storage {{\n  enabled = true\n  uri = "jdbc:h2:{self.state_dir / "messages-h2"}"\n}}\n'
            )
        path = self.state_dir / "elasticmq.conf"
        path.write_text(conf)
        return [str(lib / "*")], self.MAIN, []

    def jvm_options(self) -> list[str]:
        return [*super().jvm_options(), f"-Dconfig.file={self.state_dir / 'elasticmq.conf'}"]

    def ready(self) -> bool:
        try:
            import urllib.request

            with urllib.request.urlopen(f"{self.endpoint}/?Action=ListQueues", timeout=2) as resp:
                return resp.status == 200
        except Exception:  # noqa: BLE001 - not answering yet
            return False


SERVERS: dict[str, Callable[..., JavaServer]] = {
    "gremlin-server": GremlinServer,
    "kafka": KafkaServer,
    "elasticmq": ElasticMQServer,
}
