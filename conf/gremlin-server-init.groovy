// Binds the traversal source `g` over the TinkerGraph named `graph` in gremlin-server.yaml.
def globals = [:]
globals << [g : traversal().withEmbedded(graph)]
