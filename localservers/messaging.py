"""The event brokers the consumer reads in production, on loopback: Kafka (KRaft, one node) and
ElasticMQ (an SQS-compatible server)."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from fraudgraph.config import CONF_DIR
from fraudgraph.config.infrastructure import KafkaServerSettings, SqsServerSettings
from localservers.java import JavaServer, ServerError, absolute_state_dir, resolve_maven_classpath, servers_cache

log = logging.getLogger(__name__)


class KafkaServer(JavaServer):
    """Apache Kafka as one KRaft node (broker and controller) on loopback."""

    MAIN = "kafka.Kafka"

    def __init__(
        self,
        settings: KafkaServerSettings,
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

    def __init__(self, settings: SqsServerSettings, *, state_dir: str | Path | None = None, port: int | None = None):
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
