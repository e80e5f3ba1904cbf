"""Local servers for development and tests: Apache TinkerPop Gremlin Server, Kafka (KRaft) and
ElasticMQ (SQS), resolved from Maven Central and started on loopback. Not part of the library
layers: only the command line's server commands, the tests and the benchmarks import it."""

from localservers.gremlin import GremlinServer, JanusGraphServer, gremlin_answers
from localservers.java import JavaServer, ServerError, free_port, port_open
from localservers.messaging import ElasticMQServer, KafkaServer

__all__ = [
    "ElasticMQServer",
    "GremlinServer",
    "JanusGraphServer",
    "JavaServer",
    "KafkaServer",
    "ServerError",
    "free_port",
    "gremlin_answers",
    "port_open",
]
