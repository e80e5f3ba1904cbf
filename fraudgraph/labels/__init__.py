"""Labels: maturity rules and audited heuristics that turn raw block history into clean labels
(:mod:`.cleaning`), and the labels stage that reads the graph and writes them (:mod:`.stage`)."""
