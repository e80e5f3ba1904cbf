"""The main job's pictures, PNG files beside ``report.md``: the live stream's precision-recall curve, flags
per day against fraud activity, score distributions by fraud type against the threshold, and the identity
neighbourhood of one caught ring member and one missed fraudster. Ground truth is read for these
pictures only, after every decision is made."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraudgraph.graph import IdentityGraph
from fraudgraph.schema import LABEL_EVENT_TYPES

log = logging.getLogger(__name__)

TYPE_COLOURS = {
    "legitimate": "#4c72b0",
    "ring": "#c44e52",
    "account_takeover": "#dd8452",
    "synthetic_identity": "#8172b2",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def live_units(events_path: Path, decisions_path: Path, truth_path: Path) -> pd.DataFrame:
    """One row per customer the stream decided: ``customer_id``, ``type`` (a fraud type, or legitimate),
    ``fraud`` (decided at an event of its fraud), ``score`` (the highest at such an event for a fraudster,
    at any event otherwise) and ``flagged``."""
    events = pd.read_json(events_path, lines=True, dtype={"customer_id": str, "event_id": str})
    events["ts"] = pd.to_datetime(events["ts"], utc=True, format="ISO8601")
    decisions = pd.read_json(decisions_path, lines=True, dtype={"customer_id": str, "event_id": str})
    truth = pd.read_parquet(truth_path)
    truth["customer_id"] = truth["customer_id"].astype(str)
    start = truth.set_index("customer_id")["fraud_start_ts"].where(truth.set_index("customer_id")["is_fraud_true"])
    decisions = decisions.loc[decisions["decision"] != "blocked"]  # a standing block is not scored
    d = decisions.merge(events[["event_id", "ts"]], on="event_id", how="left", suffixes=("_decision", ""))
    d["fraud_phase"] = d["customer_id"].map(start).le(d["ts"]).fillna(False).astype(bool)
    d["flag"] = d["decision"].isin(["block", "review"])
    fraud = d.loc[d["fraud_phase"]].groupby("customer_id").agg(score=("score", "max"), flagged=("flag", "any"))
    other = (
        d.loc[~d["customer_id"].isin(fraud.index)]
        .groupby("customer_id")
        .agg(score=("score", "max"), flagged=("flag", "any"))
    )
    units = pd.concat([fraud.assign(fraud=True), other.assign(fraud=False)]).reset_index()
    kind = truth.set_index("customer_id")["fraud_type"]
    units["type"] = np.where(units["fraud"], units["customer_id"].map(kind), "legitimate")
    return units


def plot_live_pr(units: pd.DataFrame, threshold: float, path: Path) -> None:
    """The deployed model's precision-recall curve over the stream's decided customers, with the deployed
    threshold's point."""
    from sklearn.metrics import precision_recall_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    if units["fraud"].nunique() == 2:
        p, r, _ = precision_recall_curve(units["fraud"], units["score"])
        ax.plot(r, p, label="deployed rgcn_edge")
        flagged = units["score"] >= threshold
        if flagged.any():
            prec = units.loc[flagged, "fraud"].mean()
            rec = (units["fraud"] & flagged).sum() / max(units["fraud"].sum(), 1)
            ax.plot([rec], [prec], "o", color="black", label=f"deployed threshold {threshold:.3f}")
    ax.axhline(0.85, color="grey", linestyle=":", linewidth=1)
    ax.set(title="live stream, customers decided", xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_per_day(events_path: Path, decisions_path: Path, truth_path: Path, path: Path) -> None:
    """Per day of the stream: customers flagged (block or review) against fraudsters active that day
    (an identity event in their fraud)."""
    plt = _plt()
    events = pd.read_json(events_path, lines=True, dtype={"customer_id": str, "event_id": str})
    events["ts"] = pd.to_datetime(events["ts"], utc=True, format="ISO8601")
    truth = pd.read_parquet(truth_path)
    truth["customer_id"] = truth["customer_id"].astype(str)
    start = truth.set_index("customer_id")["fraud_start_ts"].where(truth.set_index("customer_id")["is_fraud_true"])
    events["day"] = events["ts"].dt.floor("D")
    active = events.loc[
        events["customer_id"].map(start).le(events["ts"]).fillna(False).astype(bool)
        & ~events["event_type"].isin(LABEL_EVENT_TYPES)
    ]
    decisions = pd.read_json(decisions_path, lines=True, dtype={"customer_id": str, "event_id": str})
    flags = decisions.loc[decisions["decision"].isin(["block", "review"])].merge(
        events[["event_id", "day"]], on="event_id"
    )
    days = pd.Index(sorted(events["day"].unique()))
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar(days, active.groupby("day")["customer_id"].nunique().reindex(days, fill_value=0), width=0.8,
           color="#dddddd", label="fraudsters active")  # fmt: skip
    ax.plot(days, flags.groupby("day")["customer_id"].nunique().reindex(days, fill_value=0), "o-", label="flagged")
    ax.set(title="live stream per day", ylabel="customers")
    ax.legend(loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_score_distributions(units: pd.DataFrame, threshold: float, path: Path) -> None:
    """Histograms of the decided customers' scores by fraud type and for legitimate customers, with the
    threshold."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    bins = np.linspace(0, 1, 41)
    for kind, colour in TYPE_COLOURS.items():
        s = units.loc[units["type"] == kind, "score"]
        if len(s):
            ax.hist(s, bins=bins, histtype="step", linewidth=1.6, color=colour, label=f"{kind} ({len(s):,})",
                    density=True)  # fmt: skip
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:.3f}")
    ax.set(title="live stream: scores of decided customers", xlabel="score", ylabel="density (log)", yscale="log")
    ax.legend(loc="upper center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_neighbourhoods(store: IdentityGraph, units: pd.DataFrame, truth_path: Path, path: Path) -> dict[str, Any]:
    """The identity neighbourhood (identifiers and their customers) of one caught ring member and one
    missed fraudster, customers coloured by their truth. Returns which customers were drawn."""
    import networkx as nx

    plt = _plt()
    truth = pd.read_parquet(truth_path)
    kind_of = dict(zip(truth["customer_id"].astype(str), truth["fraud_type"]))
    picks = {}
    caught = units.loc[(units["type"] == "ring") & units["flagged"]].sort_values("score", ascending=False)
    missed = units.loc[units["fraud"] & ~units["flagged"]].sort_values("score", ascending=False)
    if len(caught):
        picks["caught ring member"] = caught["customer_id"].iloc[0]
    if len(missed):
        picks["missed fraudster"] = missed["customer_id"].iloc[0]
    if not picks:
        return {}
    fig, axes = plt.subplots(1, len(picks), figsize=(7 * len(picks), 6), squeeze=False)
    for ax, (title, cid) in zip(axes[0], picks.items()):
        hood = store.neighbourhoods([cid], fanout_cap=12)[cid]
        g = nx.Graph()
        g.add_node(cid)
        for ident in hood.identifiers:
            node = f"{ident.kind}:{ident.value_hash[:6]}"
            g.add_node(node, identifier=ident.kind)
            g.add_edge(cid, node)
            for other in ident.customers:
                g.add_edge(node, other)
        colours = []
        for n in g.nodes:
            if "identifier" in g.nodes[n]:
                colours.append("#bbbbbb")
            else:
                colours.append(TYPE_COLOURS.get(kind_of.get(n, "none"), TYPE_COLOURS["legitimate"]))
        pos = nx.spring_layout(g, seed=7)
        sizes = [600 if n == cid else 160 if "identifier" not in g.nodes[n] else 90 for n in g.nodes]
        nx.draw_networkx(g, pos, ax=ax, node_color=colours, node_size=sizes, with_labels=False, edge_color="#999999")
        labels = {n: n.split(":")[0] for n in g.nodes if "identifier" in g.nodes[n]}
        nx.draw_networkx_labels(g, pos, labels=labels, ax=ax, font_size=7)
        ax.set_title(f"{title} ({kind_of.get(cid)})")
        ax.axis("off")
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=c, label=k) for k, c in TYPE_COLOURS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=4)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return picks


def write_figures(
    out_dir: Path, store: IdentityGraph, events_path: Path, decisions_path: Path, truth_path: Path, threshold: float
) -> dict[str, str]:
    """Every picture of the report under ``out_dir``; returns ``{name: file name}``."""
    units = live_units(events_path, decisions_path, truth_path)
    files = {
        "live_pr": "live_pr.png",
        "per_day": "live_per_day.png",
        "scores": "score_distributions.png",
        "neighbourhoods": "neighbourhoods.png",
    }
    plot_live_pr(units, threshold, out_dir / files["live_pr"])
    plot_per_day(events_path, decisions_path, truth_path, out_dir / files["per_day"])
    plot_score_distributions(units, threshold, out_dir / files["scores"])
    picks = plot_neighbourhoods(store, units, truth_path, out_dir / files["neighbourhoods"])
    (out_dir / "figures.json").write_text(json.dumps({"files": files, "neighbourhoods": picks}, indent=2))
    return files
