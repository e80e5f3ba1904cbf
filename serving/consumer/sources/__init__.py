"""Event sources and sinks of the live consumer.

``file:///path/events.jsonl`` (or a plain path) reads a JSONL file and ends
at its end (``follow=True`` keeps tailing); ``-`` reads standard input. A
file source resumes after the last committed line: its position is kept in
the consumer's ledger and committed only after the graph write and the
decision emit. ``kafka://HOST:PORT/TOPIC?group=NAME`` consumes a Kafka
topic with a consumer group; offsets are committed only after the batch's
graph write and decision emit, bad events go to ``TOPIC.dlq`` (or
``&dlq=TOPIC``); query parameters with a dot are librdkafka settings
(``&session.timeout.ms=10000``). An SQS queue URL (``https://sqs.REGION.amazonaws.com/ACCOUNT/NAME``
or ``http://127.0.0.1:9324/000000000000/NAME`` for ElasticMQ) is read with
long polling; messages are deleted only after the batch's effects, and bad
events go to the queue ``NAME-dlq`` beside it (``NAME-dlq.fifo`` for ``NAME.fifo``). Several consumers may compete for
one queue (a FIFO queue with the customer as message group keeps each customer's
events in order): each journals under a lease (:mod:`serving.consumer.partitions`).
"""

from __future__ import annotations

from urllib.parse import urlparse

from .base import IdleStop, Message, Sink, Source
from .file import FileSource, JsonlSink, StdinSource, source_name


def open_sink(uri: str, *, retry_s: float = 120) -> Sink:
    """A JSONL file or ``-`` (standard output), ``kafka://HOST:PORT/TOPIC`` or an SQS queue URL."""
    from .kafka import KafkaSink, kafka_parts
    from .sqs import SqsSink

    if uri.startswith("kafka://"):
        bootstrap, topic, _ = kafka_parts(uri)
        return KafkaSink(bootstrap, topic)
    if uri.startswith(("http://", "https://")):
        return SqsSink(uri, retry_s=retry_s)
    return JsonlSink(uri)


def dead_letter_for(source_uri: str, default: str) -> str:
    """A Kafka source's dead letters go to its DLQ topic; others to the configured file."""
    from .kafka import kafka_parts

    if source_uri.startswith("kafka://"):
        bootstrap, topic, params = kafka_parts(source_uri)
        return f"kafka://{bootstrap}/{params.get('dlq', topic + '.dlq')}"
    if source_uri.startswith(("http://", "https://")):
        queue = source_uri.rstrip("/")
        fifo = queue.endswith(".fifo")  # a FIFO queue's dead letters go to a FIFO queue: NAME-dlq.fifo
        return queue.removesuffix(".fifo") + "-dlq.fifo" if fifo else queue + "-dlq"
    return default


def open_source(
    uri: str,
    *,
    start: int = 0,
    follow: bool = False,
    idle_stop_s: float | None = None,
    retry_s: float = 120,
    visibility_timeout_s: int = 120,
) -> Source:
    from .kafka import KafkaSource, kafka_parts
    from .sqs import SqsSource

    if uri == "-":
        return StdinSource()
    if uri.startswith("kafka://"):
        bootstrap, topic, params = kafka_parts(uri)
        options = {k: v for k, v in params.items() if "." in k}
        group = params.get("group", "fraudgraph-consumer")
        return KafkaSource(bootstrap, topic, group, idle_stop_s=idle_stop_s, options=options)
    if uri.startswith(("http://", "https://")):
        return SqsSource(uri, idle_stop_s=idle_stop_s, retry_s=retry_s, visibility_timeout_s=visibility_timeout_s)
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return FileSource(parsed.path if parsed.scheme else uri, start=start, follow=follow)
    raise ValueError(
        f"source {uri!r}: expected file:///PATH, -, kafka://HOST:PORT/TOPIC?group=NAME or an SQS queue URL"
    )


__all__ = [
    "FileSource",
    "IdleStop",
    "JsonlSink",
    "Message",
    "Sink",
    "Source",
    "StdinSource",
    "dead_letter_for",
    "open_sink",
    "open_source",
    "source_name",
]
