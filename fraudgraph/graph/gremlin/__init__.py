"""Identity graph on a Gremlin server (Apache TinkerPop Gremlin Server, Amazon Neptune, JanusGraph).

Bytecode traversals through gremlinpython only: no script strings are built.
Writes are batched ``mergeV``/``mergeE`` over an injected list of maps (one
request per ``gremlin.batch_size`` elements), with caller-supplied ids so an
upsert is a direct id lookup, as Neptune recommends:

- customer vertex ``customer:<customer_id>``
- identifier vertex ``<kind>:<value_hash>`` with property ``value_hash``
- edge ``has_<kind>:<customer_id>:<value_hash>``

A link's first-seen only moves earlier and its last-seen later. A write that
keeps summaries reads its links' values first (after the invalidation below)
and sets what the merge leaves in one map; a bulk load merges them on the
server with property steps instead.

Online reads do not scan hubs. Every customer and identifier vertex carries a
materialised summary of its links (property ``link_summary``, a compact JSON
string, and ``link_summary_version``, a random token that every change replaces): for a customer what its own
features need, its latest first-seen time and the ``summary_properties``; for
an identifier its degree, first-seen range and event total, and the links of
its ``fanout_cap + 1`` lowest-id customers. Before writing, ``upsert_links``
(and ``upsert_customers`` when a kept property changes) drops the summaries of
the vertices it touches (merging them, so a vertex it creates starts from the
empty summary) and gives them new versions; after writing it refreshes
them (:meth:`SummaryCache.refresh`) in two requests: one
gives a new version and aggregates on the server, the next stores the
summary only if the version is still the one it read (compare-and-set, which
writes the version again: on JanusGraph the version is declared ``LOCK``, so a
concurrent change of it makes one of the two retry), so concurrent writers
never leave an older summary behind and a crash between the
write and the refresh leaves no summary rather than a stale one. A customer or
identifier (a hub may have thousands of links) is not aggregated again when a
link write can advance it: the invalidation returns the summary it dropped, the write
reads its links' values just before, and the refresh stores the dropped
summary advanced by the changed links, compare-and-set at the version the
invalidation left, so it is stored only if no other writer touched the vertex
since; otherwise, or when the summary alone cannot give the new one (an
existing link's first-seen moved off the latest), it aggregates. A bulk load
defers them (``graph.summaries.deferred()``) and refreshes once at the end. A reader uses a
summary when there is one and every link it covers is visible at as-of;
otherwise it aggregates the links as before. The one window left: a reader
running while another process writes the same vertex can see the summary from
just before that write, until the writer's refresh a few milliseconds later.

Transient failures (connection reset or refused, server restart, Neptune's
``ConcurrentModificationException``) are retried with exponential backoff on a
fresh connection; because every write is an idempotent upsert, a retried
request takes effect exactly once.

Modules: ``session`` (``GremlinClient``: connection, retry, chunked requests), ``memo`` (what one thread
already knows inside a block), ``summaries`` (``SummaryCache``: the summary protocol), ``writes``
(``GremlinWriter``: upserts), ``reads`` (``GremlinReader``: one customer, neighbourhoods, metadata,
exports), ``scoring_reads`` (``GremlinScoringReader``: the scoring inputs as of a time) and ``store``
(``GremlinIdentityGraph``, composed of them).
"""

from .store import GremlinIdentityGraph
from .traversals import SUMMARY, SUMMARY_VERSION

__all__ = ["SUMMARY", "SUMMARY_VERSION", "GremlinIdentityGraph"]
