"""Local servers for development and tests: Apache TinkerPop Gremlin Server, Kafka (KRaft) and
ElasticMQ (SQS), resolved from Maven Central and started on loopback. Not part of the library
layers: only the command line's server commands, the tests and the benchmarks import it."""
