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
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pandas as pd

from .elements import (
    LINK_FRAME_COLUMNS,
    CustomerUpsert,
    IdentityLink,
    LinkedIdentifier,
    Neighbourhood,
    PropertyValue,
    summarise_links,
)
from .scoring_inputs import CUSTOMER_PROPERTIES, ScoringInputs


class LinkSummaries:
    """The materialised link summaries a store keeps so that online reads need not aggregate a hub's
    links: its upkeep, apart from the graph interface. Only bulk loaders and the operator's rebuild use
    it; the consumer, scoring and the API never see summaries (writes keep them, reads use them).

    A store whose writes keep them in the same transaction (SQLite) needs no refresh; a remote store
    (Gremlin) refreshes after each write, and a bulk load defers that to one refresh at its end.
    """

    def __init__(self, store: IdentityGraph):
        self._store = store

    @property
    def refreshed_apart(self) -> bool:
        """Whether writes refresh summaries after themselves (so :meth:`deferred` means anything)."""
        return self._store._summaries_refreshed_apart

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Within the block, this thread's writes drop the summaries they touch and leave them to a later
        :meth:`refresh` (a bulk load: once per vertex at its end, not once per batch)."""
        local = self._store._summary_state
        outer = getattr(local, "deferred", False)
        local.deferred = True
        try:
            yield
        finally:
            local.deferred = outer

    def refresh(self, customer_ids: Sequence[str] = (), identifiers: Sequence[tuple[str, str]] = ()) -> None:
        """Recompute the summaries of these customers and ``(kind, value_hash)`` identifiers."""
        self._store._refresh_summaries(customer_ids, identifiers)

    def rebuild(self, progress: bool = False) -> dict[str, int]:
        """Recompute every summary from the links (after a load that bypassed the interface, such as
        Neptune's bulk loader). Returns how many customers and identifiers were summarised."""
        return self._store._rebuild_summaries(progress)


class IdentityGraph(abc.ABC):
    """Domain-level operations on the identity graph. Use as a context manager.

    Writes: :meth:`upsert_customers`, :meth:`upsert_links`. Reads: :meth:`identity`,
    :meth:`neighbourhoods`, :meth:`customers_of`, :meth:`links_of`, :meth:`identifier_inputs`,
    :meth:`customers_with`, :meth:`stats`, and the whole graph as :meth:`customers_frame` and
    :meth:`links_frame`. Scoring: :meth:`scoring_inputs`. A backend implements the abstract methods and
    the protected reads scoring is assembled from; what it keeps to answer them fast (link summaries,
    memos) stays behind them, its upkeep in :attr:`summaries`.
    """

    uri: str
    _summaries_refreshed_apart: bool = False  # writes refresh summaries after themselves (Gremlin)

    @property
    def _summary_state(self) -> threading.local:
        """This store's per-thread summary state (:meth:`LinkSummaries.deferred`), made on first use."""
        state = self.__dict__.get("_summary_local")
        return state if state is not None else self.__dict__.setdefault("_summary_local", threading.local())

    @property
    def summaries(self) -> LinkSummaries:
        """The upkeep of this store's link summaries (bulk loads and the operator's rebuild only)."""
        return LinkSummaries(self)

    @abc.abstractmethod
    def _bind_key_fingerprint(self, fingerprint: str) -> str:
        """The PII key fingerprint this graph was built with; records ``fingerprint`` when it has none."""

    @property
    @abc.abstractmethod
    def graph_id(self) -> str:
        """An id this graph keeps from its creation: what a consumer's ledger is bound to (a restore or a
        second environment is another graph)."""

    # --- writes -------------------------------------------------------------
    @abc.abstractmethod
    def upsert_customers(self, customers: Sequence[CustomerUpsert]) -> int:
        """Create or merge customer vertices (a property set to None is removed); returns the number
        written."""

    @abc.abstractmethod
    def upsert_links(self, links: Sequence[IdentityLink], *, customers: Sequence[CustomerUpsert] = ()) -> int:
        """Create or merge identity links (and their endpoint vertices).

        ``customers``: properties to merge on the links' customers in the same write (what
        :meth:`upsert_customers` would do, without its own round of requests); each must be one of the
        links' customers.
        """

    @contextmanager
    def sole_writer(self) -> Iterator[None]:
        """Within the block, this thread is the only writer of the links of every customer it reads or
        writes (the live consumer's contract: one consumer per customer, which its ledger's absolute link
        values already need). A remote store may then answer this thread's reads of those customers'
        links from what it read and wrote in the block instead of asking the server again; another
        writer's change meanwhile is seen as of this thread's own write, as if it had landed after the
        read. Stores that read locally need nothing."""
        yield

    # --- reads --------------------------------------------------------------
    @abc.abstractmethod
    def identity(self, customer_id: str) -> list[LinkedIdentifier]:
        """Identifiers of one customer with link properties and identifier degree."""

    @abc.abstractmethod
    def neighbourhoods(self, customer_ids: Sequence[str], fanout_cap: int | None = None) -> dict[str, Neighbourhood]:
        """customer -> identifiers -> customers of each given customer, at most ``fanout_cap`` customers
        per identifier (lowest ids first)."""

    @abc.abstractmethod
    def stats(self) -> dict[str, dict[str, int]]:
        """``{"vertices": {label: n}, "edges": {label: n}}`` with every label (0 included)."""

    @abc.abstractmethod
    def customers_of(self, customer_ids: Sequence[str], properties: Sequence[str] | None = None) -> pd.DataFrame:
        """``customer_id`` plus properties of the given customers (missing customers left out).

        ``properties``: only these (a column each, missing values NaN); all when None."""

    def links_of(
        self, customer_ids: Sequence[str] = (), *, keys: Sequence[tuple[str, str, str]] | None = None
    ) -> pd.DataFrame:
        """Every identity link of the given customers, in the ``links_frame`` layout; with ``keys``
        (``(customer_id, kind, value_hash)``), only those of them that are in the graph (what the live
        consumer needs before a link's first live event: stores may leave the customers' other links on
        the server)."""
        if keys is None:
            return self._customer_links(customer_ids)
        wanted = set(keys)
        frame = self._customer_links(sorted({k[0] for k in wanted}))
        mine = [key in wanted for key in zip(frame["customer_id"], frame["kind"], frame["value_hash"])]
        return frame.loc[mine].reset_index(drop=True)

    def identifier_inputs(
        self, identifiers: Sequence[tuple[str, str]], limit: int, as_of_ms: int | None = None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """What is known of these ``(kind, value_hash)`` identifiers as of ``as_of_ms`` (all when None):

        - links (``links_frame`` layout) of the ``limit`` lowest-id customers of each, among its links
          first seen by then: the messages a fan-out capped identifier aggregates;
        - statistics (``IDENTIFIER_STATS_COLUMNS``): degree, first-seen range and events over all of them.
        """
        return self._identifier_links(identifiers, limit, as_of_ms), self._identifier_stats(identifiers, as_of_ms)

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

    # --- the one scoring read ------------------------------------------------
    def scoring_inputs(self, customer_ids: Sequence[str], as_of_ms: int, fanout_cap: int) -> ScoringInputs:
        """The customers' scoring subgraph as of ``as_of_ms``: what online scores and their decisions'
        evidence are made from (the same :class:`ScoringInputs` batch scoring and training build).

        A two-layer model scores a customer from its identifiers, which aggregate their ``fanout_cap``
        lowest-id customers. So the subgraph holds the scored customers' links, those capped customers'
        links to the same identifiers, the identifiers' full statistics and every member's link summary
        (its own features) -- not the members' other links, which cannot reach the score. The union of
        several customers' subgraphs scores each of them exactly as its own would.
        """
        ids = list(dict.fromkeys(customer_ids))
        with self._summaries_read_once():  # an identifier's summary serves its neighbourhood and stats
            hoods = self.neighbourhoods(ids, fanout_cap=fanout_cap)
            idents = sorted({(i.kind, i.value_hash) for nb in hoods.values() for i in nb.identifiers})
            # the neighbourhoods carry the scored customers' own links
            own = pd.DataFrame.from_records(
                [
                    (cid, i.kind, i.value_hash, *(i.link.get(k, 0) for k in LINK_FRAME_COLUMNS[3:]))
                    for cid in ids
                    for i in hoods[cid].identifiers
                ],
                columns=LINK_FRAME_COLUMNS,
            )
            shared, stats = self.identifier_inputs(idents, fanout_cap, as_of_ms)
            if len(shared):  # a scored customer among its identifiers' lowest ids is in both: keep one
                seen = set(zip(shared["customer_id"], shared["kind"], shared["value_hash"]))
                mine = [key not in seen for key in zip(own["customer_id"], own["kind"], own["value_hash"])]
                links = pd.concat([own.loc[mine], shared], ignore_index=True)
            else:
                links = own
            members = sorted(set(ids) | set(links["customer_id"]) | {c for nb in hoods.values() for c in nb.customers})
            customers, summary = self._scoring_customers(
                members, CUSTOMER_PROPERTIES, sorted(set(links["customer_id"])), as_of_ms
            )
        return ScoringInputs(customers, links, as_of_ms, stats, summary)

    def close(self) -> None:  # noqa: B027 - stores without resources need no close
        pass

    def __enter__(self) -> IdentityGraph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what a backend implements behind the interface ----------------------
    @abc.abstractmethod
    def _customer_links(self, customer_ids: Sequence[str]) -> pd.DataFrame:
        """Every link of these customers (``links_frame`` layout)."""

    @abc.abstractmethod
    def _identifier_links(
        self, identifiers: Sequence[tuple[str, str]], limit: int, as_of_ms: int | None = None
    ) -> pd.DataFrame:
        """The links half of :meth:`identifier_inputs`."""

    @abc.abstractmethod
    def _identifier_stats(self, identifiers: Sequence[tuple[str, str]], as_of_ms: int | None = None) -> pd.DataFrame:
        """The statistics half of :meth:`identifier_inputs`."""

    def _link_summary(self, customer_ids: Sequence[str], as_of_ms: int | None = None) -> pd.DataFrame:
        """Per customer (``LINK_SUMMARY_COLUMNS``): earliest link, identifiers per kind, events and events
        per type over its links first seen at or before ``as_of_ms``; customers without links left out."""
        return summarise_links(self._customer_links(customer_ids), as_of_ms)

    def _scoring_customers(
        self,
        customer_ids: Sequence[str],
        properties: Sequence[str],
        summary_ids: Sequence[str],
        as_of_ms: int | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``(customers_of(customer_ids, properties), _link_summary(summary_ids, as_of_ms))``; stores that
        keep both in one place answer in one read."""
        return self.customers_of(customer_ids, properties), self._link_summary(summary_ids, as_of_ms)

    @contextmanager
    def _summaries_read_once(self) -> Iterator[None]:
        """Within the block, this thread's reads take each vertex's summary from the store once (one
        scoring reads an identifier's summary for its neighbourhood and its statistics, and should see one
        state of it, in one request). Stores without summaries need nothing."""
        yield

    def _summaries_deferred(self) -> bool:
        """Whether this thread is inside :meth:`LinkSummaries.deferred`."""
        return getattr(self._summary_state, "deferred", False)

    def _refresh_summaries(  # noqa: B027 - stores whose writes keep their summaries need no refresh
        self, customer_ids: Sequence[str], identifiers: Sequence[tuple[str, str]]
    ) -> None:
        """See :meth:`LinkSummaries.refresh`."""

    def _rebuild_summaries(self, progress: bool = False) -> dict[str, int]:
        """See :meth:`LinkSummaries.rebuild`."""
        return {"customers": 0, "identifiers": 0}


def customer_properties(graph: IdentityGraph, customer_id: str) -> dict[str, PropertyValue] | None:
    """The properties of one customer, or None when it is not in the graph."""
    frame = graph.customers_of([customer_id])
    if not len(frame):
        return None
    row = frame.to_dict("records")[0]
    row.pop("customer_id", None)
    return {k: v for k, v in row.items() if not (isinstance(v, float) and v != v)}
