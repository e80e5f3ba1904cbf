"""Data the tests and the benchmarks share but the product never uses: snapshot frames as store elements,
a snapshot's frames read back, and a seeded untrained model artifact (for plumbing and timing, which do
not depend on the weights)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from fraudgraph.config import Settings
from fraudgraph.graph import CustomerUpsert, IdentityLink, open_graph
from fraudgraph.graph.scoring_inputs import ScoringInputs
from fraudgraph.graph.snapshot import normalise_links
from fraudgraph.ml.artifact import ModelArtifact, seed_everything
from fraudgraph.ml.features import build_graph_tensors
from fraudgraph.ml.scaling import FeatureScaler
from fraudgraph.scoring.rules import decision_properties


def read_snapshot(snapshot_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(customers, links)`` frames of a snapshot folder."""
    d = Path(snapshot_dir)
    for name in ("customers.parquet", "links.parquet"):
        if not (d / name).exists():
            raise FileNotFoundError(f"snapshot {d}: missing {name}")
    return pd.read_parquet(d / "customers.parquet"), pd.read_parquet(d / "links.parquet")


def _clean(value):
    """Parquet/pandas scalar -> plain Python (NaN/None -> None)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def frames_to_elements(customers: pd.DataFrame, links: pd.DataFrame) -> tuple[list[CustomerUpsert], list[IdentityLink]]:
    """Snapshot frames -> ``(list[CustomerUpsert], list[IdentityLink])`` for loading into a store."""
    prop_cols = [c for c in customers.columns if c != "customer_id"]
    cust = []
    for row in customers.itertuples(index=False):
        rec = row._asdict()
        props = {c: _clean(rec[c]) for c in prop_cols}
        cust.append(CustomerUpsert(str(rec["customer_id"]), {k: v for k, v in props.items() if v is not None}))
    return cust, [IdentityLink.from_record(rec) for rec in links.to_dict("records")]


def untrained_artifact(
    customers: pd.DataFrame,
    links: pd.DataFrame,
    as_of_ms: int,
    settings: Settings,
    out_dir: str | Path,
    *,
    fanout_cap: int,
    threshold: float = 0.5,
    seed: int = 1,
    hidden: int | None = None,
    edge_hidden: int | None = None,
    dropout: float | None = None,
    members: int = 1,
) -> Path:
    """Save a seeded, untrained model artifact fitted to these frames' features and return its folder.

    For benchmarks and plumbing tests, whose timings and parity do not depend on the weights.
    ``hidden``/``edge_hidden``/``dropout`` default to the training settings; ``members`` above 1 gives
    an :class:`~fraudgraph.ml.model.AveragedRGCN` of that many (the deployed shape, for benchmarks).
    """
    from fraudgraph.ml.model import EdgeAwareRGCN, averaged

    tensors = build_graph_tensors(ScoringInputs(customers, links, as_of_ms), fanout_cap=fanout_cap)
    seed_everything(seed)
    t = settings.training
    models = [
        EdgeAwareRGCN(
            {n: x.shape[1] for n, x in tensors.node_features.items()},
            next(iter(tensors.edge_features.values())).shape[1],
            list(tensors.graph.canonical_etypes),
            hidden=hidden or t.hidden_dim,
            edge_hidden=edge_hidden or t.edge_hidden_dim,
            layers=t.layers,
            dropout=t.dropout if dropout is None else dropout,
            edge_pooling=t.edge_pooling,
        )
        for _ in range(members)
    ]
    ModelArtifact.create(
        averaged(models), FeatureScaler().fit(tensors), settings, threshold, {}, as_of_ms, fanout_cap=fanout_cap
    ).save(out_dir)
    return Path(out_dir)


def seeded_world_model(world: Path, settings: Settings, out_dir: str | Path, *, seed: int) -> Path:
    """A seeded, untrained model on a generated world's history as of its cut-off (the consumer tests'
    model: which writes and decisions happen does not depend on its quality)."""
    from etl.reference import reference_etl
    from fraudgraph.event_tags import EventTagger
    from fraudgraph.identity import IdentifierHasher

    ref = reference_etl(world, IdentifierHasher.from_settings(settings.privacy), EventTagger(settings.event_tags))
    as_of = pd.Timestamp(json.loads((world / "manifest.json").read_text())["cutoff"]).value // 10**6
    return untrained_artifact(ref["customers"], ref["links"], as_of, settings, out_dir, fanout_cap=20, seed=seed,
                              hidden=16, edge_hidden=8)


# written by decisions: their values depend on when a customer was scored, which several consumers change
TIMING_PROPERTIES = set(decision_properties(0.0, "allow", (), "", 0))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def graph_state(uri: str, settings: Settings) -> dict:
    """What must not depend on how many consumers wrote: links, link summaries, identifier statistics,
    counts, and the customer properties that come from the data (not the scores)."""
    with open_graph(uri, settings) as store:
        customers = store.customers_frame().set_index("customer_id").sort_index()
        ids = sorted(customers.index)
        links = normalise_links(store.links_frame())
        identifiers = sorted(set(zip(links["kind"], links["value_hash"])))
        kept = sorted(c for c in customers.columns if c not in TIMING_PROPERTIES)
        return {
            "links": links,
            "link_summary": store._link_summary(ids).astype("int64", errors="ignore"),
            "identifier_stats": store._identifier_stats(identifiers).astype(
                {c: "int64" for c in ("degree", "first_seen_min", "first_seen_max", "events")}),
            "stats": store.stats(),
            "customers": customers[kept].astype("string"),
        }


def assert_same_graph_frames(got: dict, want: dict) -> None:
    """The frames of two :func:`graph_state` results are equal, part by part."""
    for part in ("links", "link_summary", "identifier_stats", "customers"):
        pd.testing.assert_frame_equal(got[part], want[part], obj=part)
