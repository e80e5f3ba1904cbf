"""The domain-level identity-graph interface that every backend implements.

Identifier vertices are addressed by ``(kind, value_hash)``; the hash comes
from :class:`fraudgraph.identity.IdentifierHasher`, never a raw value.

Batch semantics (both backends): every element of a batch is validated before
anything is written. One invalid element rejects the whole batch with
:class:`InvalidElementError` naming its index and reason, and nothing of that
batch is written. A valid batch is written idempotently: applying it twice
leaves the same graph, so a batch interrupted by a crash or a lost connection
is simply applied again.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from .elements import (
    CustomerUpsert,
    IdentityLink,
    LinkedIdentifier,
    Neighbourhood,
    PropertyValue,
    summarise_links,
)


class IdentityGraph(abc.ABC):
    """Domain-level operations on the identity graph. Use as a context manager."""

    uri: str
    keeps_summaries: bool = False  # materialised link summaries that bulk loads refresh (refresh_summaries)

    @abc.abstractmethod
    def key_fingerprint(self, fingerprint: str) -> str:
        """The PII key fingerprint this graph was built with; records ``fingerprint`` when it has none."""

    @property
    @abc.abstractmethod
    def graph_id(self) -> str:
        """An id this graph keeps from its creation: what a consumer's ledger is bound to (a restore or a
        second environment is another graph)."""

    # --- writes -------------------------------------------------------------
    @abc.abstractmethod
    def upsert_customers(self, customers: Sequence[CustomerUpsert], *, summaries: bool = True) -> int:
        """Create or merge customer vertices; returns the number written (``summaries``: as for
        :meth:`upsert_links`)."""

    @abc.abstractmethod
    def upsert_links(
        self, links: Sequence[IdentityLink], *, summaries: bool = True, customers: Sequence[CustomerUpsert] = ()
    ) -> int:
        """Create or merge identity links (and their endpoint vertices).

        ``summaries=False`` leaves a store's materialised link summaries (see
        :meth:`refresh_summaries`) for the caller to refresh once after a bulk
        load, instead of after every batch; stores without them ignore it.
        ``customers``: properties to merge on the links' customers in the same
        write (what :meth:`upsert_customers` would do, without its own round of
        requests); each must be one of the links' customers.
        """

    def refresh_summaries(  # noqa: B027 - a no-op for stores that keep no summaries
        self, customer_ids: Sequence[str] = (), identifiers: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Recompute the materialised link summaries of these customers and identifiers.

        Stores that keep per-vertex summaries for online reads (the Gremlin
        store) implement it; :meth:`upsert_links` calls it for what it wrote
        unless told not to. Writes drop the summaries of what they touch first,
        so a vertex without a fresh summary has none, and readers aggregate its
        links instead.
        """

    def set_customer_properties(self, updates: Mapping[str, Mapping[str, PropertyValue | None]]) -> int:
        """Set properties (labels, scores, decisions) on customers; creates missing ones."""
        return self.upsert_customers([CustomerUpsert(cid, dict(p)) for cid, p in updates.items()])

    def rebuild_summaries(self, progress: bool = False) -> dict[str, int]:
        """Recompute every kept link summary from the links (after a load that bypassed this interface,
        such as Neptune's bulk loader). Returns how many customers and identifiers were summarised."""
        return {"customers": 0, "identifiers": 0}

    # --- reads --------------------------------------------------------------
    @abc.abstractmethod
    def customer(self, customer_id: str) -> dict[str, PropertyValue] | None:
        """Properties of one customer, or None when it does not exist."""

    @abc.abstractmethod
    def identity(self, customer_id: str) -> list[LinkedIdentifier]:
        """Identifiers of one customer with link properties and identifier degree."""

    @abc.abstractmethod
    def neighbourhood(self, customer_id: str, fanout_cap: int | None = None) -> Neighbourhood:
        """customer -> identifiers -> customers, at most ``fanout_cap`` per identifier."""

    def neighbourhoods(self, customer_ids: Sequence[str], fanout_cap: int | None = None) -> dict[str, Neighbourhood]:
        """:meth:`neighbourhood` of several customers; stores override it to share round trips."""
        return {cid: self.neighbourhood(cid, fanout_cap) for cid in dict.fromkeys(customer_ids)}

    @abc.abstractmethod
    def stats(self) -> dict[str, dict[str, int]]:
        """``{"vertices": {label: n}, "edges": {label: n}}`` with every label (0 included)."""

    @abc.abstractmethod
    def customers_of(self, customer_ids: Sequence[str], properties: Sequence[str] | None = None) -> pd.DataFrame:
        """``customer_id`` plus properties of the given customers (missing customers left out).

        ``properties``: only these (a column each, missing values NaN); all when None."""

    @abc.abstractmethod
    def links_of(self, customer_ids: Sequence[str]) -> pd.DataFrame:
        """Every identity link of the given customers, in the ``links_frame`` layout."""

    def existing_links(self, keys: Sequence[tuple[str, str, str]]) -> pd.DataFrame:
        """The links among ``(customer_id, kind, value_hash)`` keys that are in the graph, in the
        ``links_frame`` layout (what the live consumer needs before a link's first live event); stores
        override it to leave the customers' other links on the server."""
        wanted = set(keys)
        frame = self.links_of(sorted({k[0] for k in wanted}))
        mine = [key in wanted for key in zip(frame["customer_id"], frame["kind"], frame["value_hash"])]
        return frame.loc[mine].reset_index(drop=True)

    @abc.abstractmethod
    def identifier_stats(self, identifiers: Sequence[tuple[str, str]], as_of_ms: int | None = None) -> pd.DataFrame:
        """Per (kind, value_hash): degree, first_seen_min, first_seen_max, events over all its links
        first seen at or before ``as_of_ms`` (all when None)."""

    def link_summary(self, customer_ids: Sequence[str], as_of_ms: int | None = None) -> pd.DataFrame:
        """Per customer (``LINK_SUMMARY_COLUMNS``): earliest link, identifiers per kind, events and events
        per type over its links first seen at or before ``as_of_ms``; customers without links left out.

        What a customer's own features need, without moving its links."""
        return summarise_links(self.links_of(customer_ids), as_of_ms)

    def scoring_customers(
        self,
        customer_ids: Sequence[str],
        properties: Sequence[str],
        summary_ids: Sequence[str],
        as_of_ms: int | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``(customers_of(customer_ids, properties), link_summary(summary_ids, as_of_ms))``: what online
        scoring reads about its customers; stores that keep both in one place answer in one read."""
        return self.customers_of(customer_ids, properties), self.link_summary(summary_ids, as_of_ms)

    @contextmanager
    def summaries_read_once(self) -> Iterator[None]:
        """Within the block, this thread's reads take each vertex's link summary from the store once: one
        scoring reads an identifier's summary for its neighbourhood and again for its statistics, and
        should see one state of it, in one request. Stores without summaries need nothing."""
        yield

    @contextmanager
    def sole_writer(self) -> Iterator[None]:
        """Within the block, this thread is the only writer of the links of every customer it reads or
        writes (the live consumer's contract: one consumer per customer, which its ledger's absolute link
        values already need). A remote store may then answer this thread's reads of those customers'
        links, and of the link summaries it stored itself, from what it read and wrote in the block
        instead of asking the server again. A summary another writer changes meanwhile is seen as of this
        thread's own write, as if that writer's had landed after the read. Stores that read locally need
        nothing."""
        yield

    def identifier_inputs(
        self, identifiers: Sequence[tuple[str, str]], limit: int, as_of_ms: int | None = None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``(identifier_links(identifiers, limit, as_of_ms), identifier_stats(identifiers, as_of_ms))``:
        what online scoring reads about the identifiers; stores that keep both in one place answer in one
        read."""
        return self.identifier_links(identifiers, limit, as_of_ms), self.identifier_stats(identifiers, as_of_ms)

    @abc.abstractmethod
    def identifier_links(
        self, identifiers: Sequence[tuple[str, str]], limit: int, as_of_ms: int | None = None
    ) -> pd.DataFrame:
        """Links (``links_frame`` layout) of the ``limit`` lowest-id customers of each identifier,
        among its links first seen at or before ``as_of_ms``: the messages a fan-out capped
        identifier aggregates."""

    @abc.abstractmethod
    def customers_with(self, prop: str, value: PropertyValue) -> pd.DataFrame:
        """``customer_id`` plus properties of every customer whose ``prop`` equals ``value``
        (the review queue: ``decision == "review"``)."""

    @abc.abstractmethod
    def customers_frame(self) -> pd.DataFrame:
        """All customers: ``customer_id`` plus one column per property."""

    @abc.abstractmethod
    def links_frame(self) -> pd.DataFrame:
        """All identity links: customer_id, kind, value_hash, first_seen, last_seen, event_count, count_*."""

    def export(self, out_dir: str | Path) -> dict[str, Path]:
        """Write the graph as Parquet vertex and edge tables; see :mod:`fraudgraph.graph.snapshot`."""
        from .snapshot import write_snapshot

        return write_snapshot(self.customers_frame(), self.links_frame(), out_dir)

    def close(self) -> None:  # noqa: B027 - stores without resources need no close
        pass

    def __enter__(self) -> IdentityGraph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
