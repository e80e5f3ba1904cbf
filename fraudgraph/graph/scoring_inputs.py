"""The one input type scoring builds its features from, in training, batch and online scoring alike."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# what scoring and the rules read from a customer vertex
CUSTOMER_PROPERTIES = ("signup_ts", "lifetime_value", "clean_label", "blocked_at", "unblocked_at")


@dataclass
class ScoringInputs:
    """What :func:`fraudgraph.ml.features.build_graph_tensors` needs: the graph as of ``as_of_ms``.

    - ``customers``: ``customer_id`` and the properties scoring reads (``signup_ts`` in epoch ms where
      known, ``lifetime_value``, ``clean_label``); customers who signed up after as-of are left out.
    - ``links``: ``LINK_FRAME_COLUMNS`` of :mod:`fraudgraph.graph.base`; links first seen after as-of
      are left out.
    - ``identifier_stats`` (``IDENTIFIER_STATS_COLUMNS``): for a subgraph that holds only part of an
      identifier's links, its true degree, first-seen range and event total; None when ``links`` hold
      every link of every identifier (a whole graph).
    - ``customer_summary`` (``LINK_SUMMARY_COLUMNS``): likewise the own features of the customers it
      lists, for a subgraph that holds only their links to the identifiers being scored.
    - ``target_ids``: for many decision points side by side (:meth:`fraudgraph.graph.history.
      LinkHistory.scoring_inputs`), the node id of each decision point's customer, -1 when it had no
      link yet; None otherwise.

    Batch scoring builds it from a whole graph, online scoring from the neighbourhoods it reads from
    the store, training from the link history at each decision point.
    """

    customers: pd.DataFrame
    links: pd.DataFrame
    as_of_ms: int
    identifier_stats: pd.DataFrame | None = None
    customer_summary: pd.DataFrame | None = None
    target_ids: np.ndarray | None = None
