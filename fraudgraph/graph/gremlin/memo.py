"""What one thread of the Gremlin store already knows inside a block, so that it does not ask the
server again: the summaries it read or stored (a scoring's read-once block) and every link of the
customers it read or wrote (a sole writer's block, such as one live consumer step)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from ..link_summaries import LinkSummary, decode_link_summary
from .traversals import link_parts

# {customer vertex id: {identifier vertex id: link properties}}
KnownLinks = dict[str, dict[str, dict[str, int]]]


class ThreadMemo:
    """Per-thread memos, each alive only inside its block: ``summaries`` (``{vertex id: summary, or None:
    read and absent}``) inside :meth:`read_once` or :meth:`sole_writer`, ``links`` inside
    :meth:`sole_writer`. Outside its block a memo is None and every read goes to the server."""

    def __init__(self) -> None:
        self._local = threading.local()

    @property
    def summaries(self) -> dict[str, LinkSummary | None] | None:
        """This thread's summaries memo, or None outside a block."""
        return getattr(self._local, "summaries", None)

    @property
    def links(self) -> KnownLinks | None:
        """Inside :meth:`sole_writer`, every link of the customers this thread read or wrote in the block;
        None outside one."""
        return getattr(self._local, "links", None)

    @contextmanager
    def read_once(self) -> Iterator[None]:
        """Within the block, each vertex's summary is read from the server once."""
        outer = self.summaries
        if outer is None:
            self._local.summaries = {}
        try:
            yield
        finally:
            if outer is None:
                self._local.summaries = None

    @contextmanager
    def sole_writer(self) -> Iterator[None]:
        """The summaries memo of :meth:`read_once`, kept for the whole block (stored summaries go in it,
        invalidated ones come out), and every link of the customers whose links were read in the block."""
        if self.links is not None:
            yield
            return
        outer = self.summaries
        self._local.links = {}
        if outer is None:
            self._local.summaries = {}
        try:
            yield
        finally:
            self._local.links = None
            if outer is None:
                self._local.summaries = None

    def customers_links(
        self, customer_vids: Sequence[str], read: Callable[[Sequence[str]], list[Any]]
    ) -> list[tuple[str, str, dict[str, int]]]:
        """Every link of these customers as ``(customer vertex id, identifier vertex id, properties)``;
        ``read(vids)`` gives :func:`projected_links` rows of the given customers' links. Inside
        :meth:`sole_writer`, a customer whose links were read or written in the block is not asked again,
        and the ones read are kept (a customer with two edges to one identifier, which concurrent
        creators can leave on JanusGraph, is not: its writes read it afresh and merge the duplicates)."""
        known = self.links
        vids = list(dict.fromkeys(customer_vids))
        asked = vids if known is None else [v for v in vids if v not in known]
        rows = [link_parts(r) for r in read(asked)] if asked else []
        if known is None:
            return rows
        fresh: KnownLinks = {v: {} for v in asked}
        doubled = set()
        for customer, ident, props in rows:
            if ident in fresh[customer]:
                doubled.add(customer)
            fresh[customer][ident] = props
        out = [row for row in rows if row[0] in doubled]
        for vid in vids:
            if vid in doubled:
                continue
            links = known.get(vid)
            if links is None:
                links = known[vid] = fresh.get(vid, {})
            out += [(vid, ident, dict(props)) for ident, props in links.items()]
        return out

    def forget_links(self, customer_vids: Sequence[str]) -> KnownLinks:
        """Take these customers out of :meth:`sole_writer`'s known links; what was known of them."""
        known = self.links
        if known is None:
            return {}
        return {vid: known.pop(vid) for vid in customer_vids if vid in known}

    def note_links(self, links: Mapping[str, dict[str, dict[str, int]]]) -> None:
        """Inside :meth:`sole_writer`: every link of each customer as this thread wrote it."""
        known = self.links
        if known is not None:
            known.update(links)

    def note_summaries(self, stored: Mapping[str, str | None]) -> None:
        """Inside a block: ``{vertex id: summary text this thread stored, or None: dropped}``."""
        read = self.summaries
        if read is None:
            return
        for vid, text in stored.items():
            if text is None:
                read.pop(vid, None)
            else:
                read[vid] = decode_link_summary(text)

    def clear(self) -> None:
        """Forget what this thread knows (the graph was cleared)."""
        for memo in (self.links, self.summaries):
            if memo is not None:
                memo.clear()
