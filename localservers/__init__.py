"""Local servers for development and tests: Apache TinkerPop Gremlin Server, JanusGraph Server (in memory
or on a single-node Apache Cassandra), Kafka (KRaft) and ElasticMQ (SQS), resolved from Maven Central and
started on loopback. Not part of the library layers: only the command line's server commands, the tests
and the benchmarks import it."""

from localservers.cassandra import CassandraServer
from localservers.gremlin import GremlinServer, JanusGraphServer, gremlin_answers
from localservers.java import JavaServer, ServerError, free_port, port_open
from localservers.messaging import ElasticMQServer, KafkaServer

__all__ = [
    "CassandraServer",
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
