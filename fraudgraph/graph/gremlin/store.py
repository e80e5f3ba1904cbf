"""The identity graph on a Gremlin server, composed of a client, the link summary cache and its
writer and readers (the protocol is in :mod:`fraudgraph.graph.gremlin`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..base import IdentityGraph
from .memo import ThreadMemo
from .reads import GremlinReader
from .scoring_reads import GremlinScoringReader
from .session import GremlinClient
from .summaries import SummaryCache
from .writes import GremlinWriter

if TYPE_CHECKING:
    import pandas as pd

    from ...config import GraphSettings
    from ..elements import CustomerUpsert, IdentityLink, LinkedIdentifier, Neighbourhood, PropertyValue


class GremlinIdentityGraph(IdentityGraph):
    """Identity graph behind a Gremlin endpoint ``ws://HOST:PORT/gremlin`` or ``wss://...``.

    ``client`` sends the requests (connection, retry, chunks side by side); ``summary_cache`` keeps every
    vertex's link summary current and reads it; the writer and the readers hold the traversals. The
    store answers the graph interface by handing each call to one of them.
    """

    _summaries_refreshed_apart = True

    def __init__(self, uri: str, settings: GraphSettings):
        """The store at ``uri`` built from its settings (``graph`` and ``graph.gremlin``)."""
        self.uri = uri
        self.client = GremlinClient(uri, settings)
        self.summary_cache = SummaryCache(self.client, ThreadMemo(), settings)
        self._memo = self.summary_cache.memo
        self._reader = GremlinReader(self.client, self.summary_cache, settings.neighbourhood_fanout_cap)
        self._scoring = GremlinScoringReader(self.client, self.summary_cache)
        # looked up at each call: the tests interleave a second writer at the write's read of its links
        self._writer = GremlinWriter(self.client, self.summary_cache, lambda keys: self.links_of(keys=keys))

    # ---------------------------------------------------------------- writes
    def upsert_customers(self, customers: Sequence[CustomerUpsert]) -> int:
        return self._writer.upsert_customers(customers, refresh=not self._summaries_deferred())

    def upsert_links(self, links: Sequence[IdentityLink], *, customers: Sequence[CustomerUpsert] = ()) -> int:
        return self._writer.upsert_links(links, customers=customers, refresh=not self._summaries_deferred())

    @contextmanager
    def sole_writer(self) -> Iterator[None]:
        # the summaries memo of a read-once block, kept for the whole block, and every link of the
        # customers whose links were read in it
        with self._memo.sole_writer():
            yield

    def clear(self) -> None:
        """Drop every vertex and edge (tests and benchmarks only)."""
        self._writer.clear()

    # ----------------------------------------------------------------- reads
    @property
    def graph_id(self) -> str:
        return self._reader.graph_id()

    def _bind_key_fingerprint(self, fingerprint: str) -> str:
        return self._reader.bind_key_fingerprint(fingerprint)

    def identity(self, customer_id: str) -> list[LinkedIdentifier]:
        return self._reader.identity(customer_id)

    def neighbourhoods(self, customer_ids: Sequence[str], fanout_cap: int | None = None) -> dict[str, Neighbourhood]:
        return self._reader.neighbourhoods(customer_ids, fanout_cap)

    def stats(self) -> dict[str, dict[str, int]]:
        return self._reader.stats()

    def customers_with(self, prop: str, value: PropertyValue) -> pd.DataFrame:
        return self._reader.customers_with(prop, value)

    def customers_frame(self) -> pd.DataFrame:
        return self._reader.customers_frame()

    def links_frame(self) -> pd.DataFrame:
        return self._reader.links_frame()

    # --------------------------------------------------------- scoring reads
    def customers_of(self, customer_ids: Sequence[str], properties: Sequence[str] | None = None) -> pd.DataFrame:
        return self._scoring.customers_of(customer_ids, properties)

    def links_of(
        self, customer_ids: Sequence[str] = (), *, keys: Sequence[tuple[str, str, str]] | None = None
    ) -> pd.DataFrame:
        """With ``keys``, where the store names edges itself (``edge_ids: supplied``), the asked edges by
        id: a customer's other links stay on the server. Engines that name edges read the customers'
        links, and so does every engine inside :meth:`sole_writer`, where they serve the block's later
        reads."""
        if keys is None or self.client.edge_ids != "supplied" or self._memo.links is not None:
            return super().links_of(customer_ids, keys=keys)
        return self._scoring.links_by_edge_id(keys)

    def identifier_inputs(
        self, identifiers: Sequence[tuple[str, str]], limit: int, as_of_ms: int | None = None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        return self._scoring.identifier_inputs(identifiers, limit, as_of_ms)

    def _customer_links(self, customer_ids: Sequence[str]) -> pd.DataFrame:
        return self._scoring.customer_links(customer_ids)

    def _identifier_links(
        self, identifiers: Sequence[tuple[str, str]], limit: int, as_of_ms: int | None = None
    ) -> pd.DataFrame:
        return self._scoring.identifier_links(identifiers, limit, as_of_ms)

    def _identifier_stats(self, identifiers: Sequence[tuple[str, str]], as_of_ms: int | None = None) -> pd.DataFrame:
        return self._scoring.identifier_stats(identifiers, as_of_ms)

    def _link_summary(self, customer_ids: Sequence[str], as_of_ms: int | None = None) -> pd.DataFrame:
        return self._scoring.link_summary(customer_ids, as_of_ms)

    def _scoring_customers(
        self,
        customer_ids: Sequence[str],
        properties: Sequence[str],
        summary_ids: Sequence[str],
        as_of_ms: int | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        return self._scoring.scoring_customers(customer_ids, properties, summary_ids, as_of_ms)

    # ------------------------------------------------------------- summaries
    @contextmanager
    def _summaries_read_once(self) -> Iterator[None]:
        with self._memo.read_once():
            yield

    def _refresh_summaries(self, customer_ids: Sequence[str], identifiers: Sequence[tuple[str, str]]) -> None:
        self.summary_cache.refresh(customer_ids, identifiers)

    def _rebuild_summaries(self, progress: bool = False) -> dict[str, int]:
        return self.summary_cache.rebuild(progress)

    def close(self) -> None:
        """Close the connection (at once if idle, else when its last request is done)."""
        self.client.close()
