"""A single-node Apache Cassandra on loopback (jars from Maven, ``conf/servers/cassandra.yaml``): the
storage of a local JanusGraph Server with ``janusgraph_server.storage: cql``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fraudgraph.config import CONF_DIR
from localservers.java import JavaServer, absolute_state_dir, resolve_maven_classpath, servers_cache

# What Cassandra's own start script passes to a Java 17 JVM (its jvm17-server.options): the JDK
# internals it reaches into (off-heap memory, JMX, the agent that attaches to itself).
_EXPORTS = (
    "java.base/jdk.internal.misc", "java.management.rmi/com.sun.jmx.remote.internal.rmi", "java.rmi/sun.rmi.registry",
    "java.rmi/sun.rmi.server", "java.sql/java.sql", "java.base/java.lang.ref", "jdk.unsupported/sun.misc",
    "jdk.compiler/com.sun.tools.javac.file", "jdk.attach/sun.tools.attach",
)  # fmt: skip
_OPENS = (
    "java.base/java.lang.module", "java.base/jdk.internal.loader", "java.base/jdk.internal.ref",
    "java.base/jdk.internal.reflect", "java.base/jdk.internal.math", "java.base/jdk.internal.module",
    "java.base/jdk.internal.util.jar", "jdk.management/com.sun.management.internal", "java.base/sun.nio.ch",
    "java.base/java.io", "java.base/java.lang.reflect", "jdk.compiler/com.sun.tools.javac", "java.base/java.lang",
    "java.base/java.util", "java.base/java.nio",
)  # fmt: skip


class CassandraServer(JavaServer):
    """Apache Cassandra, one node, CQL on ``settings.port``; data, commit log and hints in the state
    folder (a restart keeps them)."""

    MAIN = "org.apache.cassandra.service.CassandraDaemon"
    NAME = "cassandra"

    def __init__(
        self,
        settings: Any,  # CassandraServerSettings
        *,
        state_dir: str | Path | None = None,
        port: int | None = None,
        storage_port: int | None = None,
    ):
        state = absolute_state_dir(state_dir or settings.state_dir)
        super().__init__(
            self.NAME, state, settings.host, port or settings.port, settings.start_timeout_s, settings.heap
        )
        self.settings = settings
        self.storage_port = storage_port or settings.storage_port

    def lib_dir(self) -> Path:
        return resolve_maven_classpath(
            CONF_DIR / "servers" / "cassandra.pom.xml",
            servers_cache() / f"cassandra-{self.settings.cassandra_version}",
            {"cassandra.version": self.settings.cassandra_version},
        )

    def prepare(self) -> tuple[list[str], str, list[str]]:
        lib = self.lib_dir()
        config = yaml.safe_load((CONF_DIR / "servers" / "cassandra.yaml").read_text())
        dirs = {name: self.state_dir / name for name in ("data", "commitlog", "saved_caches", "hints", "cdc_raw")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        config.update(
            listen_address=self.host,
            rpc_address=self.host,
            native_transport_port=self.port,
            storage_port=self.storage_port,
            seed_provider=[
                {
                    "class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
                    "parameters": [{"seeds": f"{self.host}:{self.storage_port}"}],
                }
            ],
            data_file_directories=[str(dirs["data"])],
            commitlog_directory=str(dirs["commitlog"]),
            saved_caches_directory=str(dirs["saved_caches"]),
            hints_directory=str(dirs["hints"]),
            cdc_raw_directory=str(dirs["cdc_raw"]),
        )
        runtime = self.state_dir / "cassandra.yaml"
        runtime.write_text(yaml.safe_dump(config, sort_keys=False))  # read as -Dcassandra.config (jvm_options)
        return [str(lib / "*")], self.MAIN, []

    def jvm_options(self) -> list[str]:
        base = super().jvm_options()
        if not self.settings.quick_jit:
            base = [o for o in base if not o.startswith("-XX:TieredStopAtLevel")]
        return [
            *base,
            f"-Xms{self.heap}",
            "-Djdk.attach.allowAttachSelf=true",
            *(f"--add-exports={e}=ALL-UNNAMED" for e in _EXPORTS),
            *(f"--add-opens={o}=ALL-UNNAMED" for o in _OPENS),
            "-Dio.netty.tryReflectionSetAccessible=true",
            f"-Dcassandra.config=file://{self.state_dir / 'cassandra.yaml'}",
            f"-Dcassandra.storagedir={self.state_dir}",
            "-Dcassandra-foreground=yes",
            "-Dcassandra.jmx.local.port=0",  # no JMX port to collide with another node on this machine
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            "-XX:+ExitOnOutOfMemoryError",
        ]

    def ready(self) -> bool:
        """The CQL port answers (Cassandra opens it last, when the node is up)."""
        return True
