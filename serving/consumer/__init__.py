"""The live consumer: events from a source into the graph, scored and decided, exactly once.

- :mod:`.pipeline`: the steps of one micro-batch (parse, de-duplicate, step, journal, apply, score,
  decide, commit) and recovery;
- :mod:`.ledger`: the journal that makes effects exactly-once over at-least-once delivery;
- :mod:`.steps`: the pure rules the consumer and the bulk replay share (validation, event-time steps,
  watermark, link counts, digests);
- :mod:`.sources`: the source and sink protocols and their file, Kafka and SQS implementations;
- :mod:`.builder`: the one place a consumer is put together.
"""

from .builder import build_consumer, open_consumer_source, open_ledger
from .ledger import JournalEntry, Ledger, LedgerMismatch
from .pipeline import LiveConsumer

__all__ = [
    "JournalEntry",
    "Ledger",
    "LedgerMismatch",
    "LiveConsumer",
    "build_consumer",
    "open_consumer_source",
    "open_ledger",
]
