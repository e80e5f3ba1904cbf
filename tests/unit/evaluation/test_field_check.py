"""The world gives fraud away in no field the model never reads, and the check sees one that is planted."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fraudgraph.evaluation.field_check import FIELD_LIMIT, field_check
from fraudgraph.synthetic.world import WorldGenerator
from fraudgraph.timeutil import DAY_MS, to_epoch_ms

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory, settings):
    """A 10,000-customer world (enough fraud in the test window for a PR-AUC to mean something)."""
    out = tmp_path_factory.mktemp("field-world")
    WorldGenerator(settings.world.model_copy(update={"customers": 10000, "chunk_customers": 5000, "seed": 5})).generate(
        out, progress=False)
    return out


def population(world, settings) -> tuple[pd.DataFrame, int]:
    """Customers active in the test window with their truth there (what world-check reads)."""
    as_of = to_epoch_ms(json.loads((world / "manifest.json").read_text())["cutoff"])
    ev = pd.read_parquet(world / "historical" / "events.parquet", columns=["customer_id", "ts"])
    ev["ms"] = pd.to_datetime(ev["ts"], utc=True).dt.as_unit("ms").astype("int64")
    active = ev.loc[ev["ms"] >= as_of - settings.training.split.test_days * DAY_MS, "customer_id"].astype(str).unique()
    truth = pd.read_parquet(world / "truth" / "ground_truth.parquet").set_index("customer_id")
    start = pd.to_datetime(truth["fraud_start_ts"], utc=True).dt.as_unit("ms").astype("int64")
    fraud = truth["is_fraud_true"] & (start <= as_of)
    return pd.DataFrame({"customer_id": active, "is_fraud": fraud.reindex(active).fillna(False).astype(int).to_numpy()}), as_of


def test_the_default_world_gives_nothing_away(world, settings):
    pop, as_of = population(world, settings)
    r = field_check(world, pop, as_of)
    assert r["fraudsters"] >= 20 and len(r["fields"]) >= 45 and len(r["pairs"]) >= 20
    assert r["max_field"]["pr_auc"] <= FIELD_LIMIT, r["fields"][:3]
    assert r["max_pair"]["pr_auc"] <= FIELD_LIMIT, r["pairs"][:3]
    assert all(o["pr_auc"] <= o["limit"] for o in r["orders"]), r["orders"]
    block_fields = [x for x in r["label_fields"] if x["field"] in ("block_source", "block_reason")]
    assert len(block_fields) == 2 and all(x["gain"] <= FIELD_LIMIT for x in block_fields), block_fields
    assert not r["gives_fraud_away"]


def test_planted_give_aways_are_seen(world, settings, tmp_path):
    """Fraudsters' rows first, a reason that names true blocks, an e-mail domain only fraudsters use: all caught."""
    import shutil

    planted = tmp_path / "planted"
    shutil.copytree(world, planted)
    truth = pd.read_parquet(planted / "truth" / "ground_truth.parquet").set_index("customer_id")["is_fraud_true"]
    customers = pd.read_parquet(planted / "historical" / "customers.parquet")
    customers = customers.iloc[customers["customer_id"].map(truth).astype(int).argsort(kind="stable")[::-1]]
    customers.to_parquet(planted / "historical" / "customers.parquet", index=False)
    blocks = pd.read_parquet(planted / "historical" / "blocks.parquet")
    blocks["reason"] = blocks["customer_id"].map(truth).map({True: "fraud_confirmed", False: "velocity_rule"})
    blocks.to_parquet(planted / "historical" / "blocks.parquet", index=False)
    events = pd.read_parquet(planted / "historical" / "events.parquet")
    fraud_email = events["email"].notna() & events["customer_id"].map(truth).astype(bool)
    events.loc[fraud_email, "email"] = "x" + events.loc[fraud_email, "event_id"].astype(str).str[-6:] + "@burner.example"
    events.to_parquet(planted / "historical" / "events.parquet", index=False)

    pop, as_of = population(planted, settings)
    r = field_check(planted, pop, as_of)
    assert r["gives_fraud_away"]
    orders = {o["field"]: o for o in r["orders"]}
    assert orders["customers_row"]["pr_auc"] > 0.5 > orders["customers_row"]["limit"]
    fields = {f["field"]: f["pr_auc"] for f in r["fields"]}
    assert fields["email_domain"] > FIELD_LIMIT
    labels = {x["field"]: x for x in r["label_fields"]}
    assert labels["block_reason"]["gain"] > 0.9
