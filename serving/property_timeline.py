"""Each customer's scoring properties after any step of a planned stream: the graph's value before the stream,
replaced by the latest step at or before it that set one (as the consumer's write after each step does)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fraudgraph.graph.scoring_inputs import CUSTOMER_PROPERTIES

if TYPE_CHECKING:
    from serving.bulk_replay import StreamPlan


class _PropertyTimeline:
    """Each customer's scoring properties after any step: the graph's value before the stream, replaced
    by the latest step at or before it that set one (as the consumer's write after each step does)."""

    def __init__(self, customer_code: pd.Index, customers: pd.DataFrame, plan: StreamPlan):
        self.n_steps = plan.steps + 1
        base_rows = customer_code.get_indexer(customers["customer_id"].astype(str))
        self.base: dict[str, np.ndarray] = {}
        self.updates: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        upd = plan.property_updates
        for name in CUSTOMER_PROPERTIES:
            numeric = name != "clean_label"
            base = np.full(len(customer_code), np.nan) if numeric else np.full(len(customer_code), None, object)
            if name in customers:
                col = customers[name]
                base[base_rows] = (
                    pd.to_numeric(col, errors="coerce").to_numpy(float) if numeric else col.to_numpy(object)
                )
            self.base[name] = base
            mine = upd.loc[upd["name"] == name]
            key = customer_code.get_indexer(mine["customer_id"].astype(str)).astype(np.int64) * self.n_steps + mine[
                "step"
            ].to_numpy(np.int64)
            values = (
                pd.to_numeric(mine["value"], errors="coerce").to_numpy(float) if numeric else mine["value"].to_numpy()
            )
            order = np.argsort(key, kind="stable")
            self.updates[name] = (key[order], np.asarray(values)[order])

    def values(self, code: np.ndarray, step: np.ndarray, names=CUSTOMER_PROPERTIES) -> dict[str, np.ndarray]:
        """``{name: (len(code),)}``: each property of customer ``code[i]`` after step ``step[i]``."""
        out = {}
        query = code.astype(np.int64) * self.n_steps + step
        for name in names:
            key, values = self.updates[name]
            result = self.base[name][code].copy()
            if len(key):
                i = np.searchsorted(key, query, "right") - 1
                hit = (i >= 0) & (key[np.maximum(i, 0)] // self.n_steps == code)
                result[hit] = values[i[hit]]
            out[name] = result
        return out
