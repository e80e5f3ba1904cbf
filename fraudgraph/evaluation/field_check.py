"""Does a world give fraud away in a field the model never reads? Every raw column, the per-customer
statistics a fraud team would compute from them, pairs of those, and the order of rows and ids, each
ranked against ground truth on the test population.

``fraudgraph world-check`` runs it beside the model-input read-back (:mod:`training.readback`). The
test population is the customers with a decision point in the test window (the last
``training.split.test_days`` before the cut-off), as the read-back's; only the historical tables
(what the ETL loads) are read, and ground truth only to score each field.

Each field becomes a ranking of customers and is scored by its PR-AUC against truth (fraud started
by the cut-off):

- a number: ranked up and down, and by a two-fold cross-fitted depth-3 tree over it (a band such as
  "amount between 80 and 200" counts); the best of the three;
- a category (a domain, a reason code, a channel): by the fraud share of its value, cross-fitted the
  same way (the share is learned on one half of the customers and ranks the other);
- a pair: the cross-fitted tree over the two, for every pair of the strongest single fields;
- an order (row position, id order): ranked up and down, and compared with the same ranking of
  randomly shuffled customers (its 99th percentile over ``ORDER_SHUFFLES`` shuffles is the limit).

The label columns (block source and reason, appeal outcome) are read among every customer blocked by
the cut-off: how well they tell a false block from a true one, as a gain over the false blocks' share
(``label_fields``). The block's source and reason are held to the limit; the appeal's outcome is the
dispute process doing its work, and is reported only.

A world gives fraud away while any field, statistic or pair ranks above ``FIELD_LIMIT`` (0.35), or an
order above its shuffled limit. ``docs/synthetic-world.md`` keeps the default world's table.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from fraudgraph.evaluation.ranking import ranking_metrics
from fraudgraph.timeutil import DAY_MS, series_epoch_ms

FIELD_LIMIT = 0.35
ORDER_SHUFFLES = 200
PAIR_CANDIDATES = 12
# the block's own fields must not tell a true block from a false one; the appeal's outcome is the dispute
# process doing its work (reported, not held to the limit)
BLOCK_FIELDS = ("block_source", "block_reason")
DISPOSABLE = ("mailinator", "tempmail", "guerrilla", "yopmail", "10minute", "trashmail", "sharklasers")
HOSTING_FIRST_OCTETS = (45, 91, 103, 185, 193)


def _pr_auc(y: np.ndarray, score: np.ndarray) -> float:
    return float(ranking_metrics(y, score)["pr_auc"] or 0.0)


def _halves(ids: np.ndarray) -> np.ndarray:
    """A fixed two-way split of the customers (by a hash of the id), for cross-fitting."""
    return (pd.util.hash_array(ids.astype(str)) % 2).astype(int)


def _tree_scores(x: np.ndarray, y: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Out-of-fold fraud probabilities of a depth-3 tree over the columns of ``x``."""
    from sklearn.tree import DecisionTreeClassifier

    out = np.zeros(len(y))
    x = np.nan_to_num(np.asarray(x, dtype=float).reshape(len(y), -1), nan=-1e12)
    for k in (0, 1):
        fit, score = half != k, half == k
        if y[fit].min() == y[fit].max():
            continue
        tree = DecisionTreeClassifier(max_depth=3, min_samples_leaf=20, random_state=0).fit(x[fit], y[fit])
        out[score] = tree.predict_proba(x[score])[:, 1]
    return out


def _category_scores(values: pd.Series, y: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Out-of-fold fraud share of each customer's value (smoothed towards the base rate)."""
    v = values.fillna("<none>").astype(str).to_numpy()
    out = np.zeros(len(y))
    for k in (0, 1):
        fit = half != k
        frame = pd.DataFrame({"v": v[fit], "y": y[fit]}).groupby("v")["y"].agg(["sum", "count"])
        prior = y[fit].mean()
        share = (frame["sum"] + 20 * prior) / (frame["count"] + 20)
        out[half == k] = pd.Series(v[half == k]).map(share).fillna(prior).to_numpy()
    return out


def score_field(x: ArrayLike, y: np.ndarray, half: np.ndarray, *, categorical: bool = False) -> float:
    """The field's PR-AUC as the module docstring describes (the best of its rankings)."""
    if categorical:
        return _pr_auc(y, _category_scores(pd.Series(x), y, half))
    x = np.asarray(x, dtype=float)
    filled = np.nan_to_num(x, nan=np.nanmin(x) - 1 if np.isfinite(x).any() else 0.0)
    return max(_pr_auc(y, filled), _pr_auc(y, -filled), _pr_auc(y, _tree_scores(x, y, half)))


def _email_parts(emails: pd.Series) -> pd.DataFrame:
    e = emails.fillna("").astype(str).str.strip().str.lower()
    local = e.str.split("@").str[0].fillna("")
    domain = e.str.split("@").str[-1].fillna("")
    digits = local.str.count(r"\d")
    return pd.DataFrame(
        {
            "email_local_length": local.str.len(),
            "email_local_digits": digits,
            "email_local_digit_share": digits / local.str.len().clip(lower=1),
            "email_trailing_digits": local.str.extract(r"(\d*)$")[0].str.len(),
            "email_local_has_separator": local.str.contains(r"[._+\-]").astype(float),
            "email_name_like": local.str.fullmatch(r"[a-z]+([._-]?[a-z]+)*\d{0,4}").astype(float),
            "email_disposable": domain.str.contains("|".join(DISPOSABLE)).astype(float),
            "email_domain": domain,
        }
    )


def _ip_parts(ips: pd.Series) -> pd.DataFrame:
    parts = (
        ips.fillna("0.0.0.0").astype(str).str.split(".", expand=True).reindex(columns=range(4)).fillna("").astype(str)
    )
    first = pd.to_numeric(parts[0], errors="coerce")
    return pd.DataFrame(
        {
            "ip_slash24": parts[0] + "." + parts[1] + "." + parts[2],
            "ip_slash16": parts[0] + "." + parts[1],
            "ip_hosting": first.isin(HOSTING_FIRST_OCTETS).astype(float),
            "ip_carrier_nat": ips.fillna("").astype(str).str.startswith("100.").astype(float),
        }
    )


def customer_statistics(events: pd.DataFrame, customers: pd.DataFrame, as_of_ms: int) -> pd.DataFrame:
    """Per customer (index ``customer_id``): every statistic this check scores. Numeric columns, plus the
    categorical ones listed in ``CATEGORICAL``."""
    ev = events.copy()
    ev["ts_ms"] = series_epoch_ms(ev["ts"])
    ev = ev.sort_values(["customer_id", "ts_ms"], kind="stable")
    ev = pd.concat([ev, _email_parts(ev["email"]).add_prefix("e_"), _ip_parts(ev["ip"]).add_prefix("i_")], axis=1)
    g = ev.groupby("customer_id", sort=True)
    out = pd.DataFrame(index=g.size().index)
    out["events"] = g.size()
    for t in ("signup", "login", "payment", "add_card", "change_email"):
        out[f"events_{t}"] = (ev["event_type"] == t).groupby(ev["customer_id"]).sum()
    for col in ("device_id", "ip", "email", "card_fingerprint", "channel", "country", "currency", "i_ip_slash24",
                "i_ip_slash16"):  # fmt: skip
        out[f"distinct_{col.removeprefix('i_')}"] = g[col].nunique()
    out["events_per_device"] = out["events"] / out["distinct_device_id"].clip(lower=1)
    out["ips_per_slash24"] = out["distinct_ip"] / out["distinct_ip_slash24"].clip(lower=1)
    out["hosting_ip_share"] = g["i_ip_hosting"].mean()
    out["carrier_ip_share"] = g["i_ip_carrier_nat"].mean()
    pay = ev.loc[ev["event_type"] == "payment"].groupby("customer_id")["amount"]
    for stat in ("mean", "max", "min", "std", "sum", "median"):
        out[f"amount_{stat}"] = pay.agg(stat)
    out["amount_cents_round"] = pay.apply(lambda a: float((np.round(a * 100) % 100 == 0).mean()))
    gaps = g["ts_ms"].diff().groupby(ev["customer_id"])
    out["gap_min_h"] = gaps.min() / 3.6e6
    out["gap_median_h"] = gaps.median() / 3.6e6
    out["span_days"] = (g["ts_ms"].max() - g["ts_ms"].min()) / DAY_MS
    first = g["ts_ms"].min()
    for t in ("add_card", "payment", "change_email", "login"):
        at = ev.loc[ev["event_type"] == t].groupby("customer_id")["ts_ms"].min()
        out[f"first_{t}_after_h"] = (at - first) / 3.6e6
    out["last_event_age_days"] = (as_of_ms - g["ts_ms"].max()) / DAY_MS
    out["hour_of_day_mean"] = g["ts_ms"].apply(lambda t: float(((t // 3_600_000) % 24).mean()))
    signup_email = ev.loc[ev["email"].notna()].groupby("customer_id").first()
    for col in ("email_local_length", "email_local_digits", "email_local_digit_share", "email_trailing_digits",
                "email_local_has_separator", "email_name_like", "email_disposable", "email_domain"):  # fmt: skip
        out[col] = signup_email[f"e_{col}"]
    out["email_changes"] = out["events_change_email"]
    out["main_channel"] = g["channel"].agg(lambda s: s.mode().iat[0] if len(s.dropna()) else None)
    out["main_ip_first_octet"] = g["ip"].agg(lambda s: str(s.mode().iat[0]).split(".")[0] if len(s.dropna()) else None)
    out["device_id_shape"] = g["device_id"].first().fillna("").str.replace(r"[0-9a-f]", "x", regex=True)
    out["card_shape"] = g["card_fingerprint"].first().fillna("").str.replace(r"[0-9a-f]", "x", regex=True)
    out["event_country_mismatch"] = (
        (ev["country"] != ev["customer_id"].map(customers.set_index("customer_id")["country"]))
        .groupby(ev["customer_id"])
        .mean()
    )
    c = customers.set_index("customer_id")
    out["lifetime_value"] = c["lifetime_value"].reindex(out.index)
    out["account_age_days"] = (as_of_ms - series_epoch_ms(c["signup_ts"])).reindex(out.index) / DAY_MS
    out["country"] = c["country"].reindex(out.index)
    return out


CATEGORICAL = ("email_domain", "main_channel", "main_ip_first_octet", "device_id_shape", "card_shape", "country")


def order_fields(world: Path, ids: pd.Index) -> pd.DataFrame:
    """Per customer: its row in ``customers.parquet``, the id of its first event (ids compared as text;
    one id each, so a customer with more events is not favoured) and its own id. (Events are in time
    order by contract: the row of a customer's first event is its account age, a statistic, not an
    order.)"""
    customers = pd.read_parquet(world / "historical" / "customers.parquet", columns=["customer_id"])
    events = pd.read_parquet(world / "historical" / "events.parquet", columns=["event_id", "customer_id"])
    row = pd.Series(np.arange(len(customers)), index=customers["customer_id"].astype(str))
    id_rank = pd.Series(events["event_id"].astype(str).rank(method="dense").to_numpy(), index=events.index)
    first_id = id_rank.groupby(events["customer_id"].astype(str).to_numpy()).first()
    own = pd.Series(ids.astype(str).to_numpy(), index=ids).rank(method="dense")
    return pd.DataFrame(
        {
            "customers_row": row.reindex(ids),
            "event_id_order": first_id.reindex(ids),
            "customer_id_order": own.reindex(ids),
        },
        index=ids,
    )


def field_check(world_dir: str | Path, population: pd.DataFrame, as_of_ms: int) -> dict[str, Any]:
    """Score every field of the world in ``world_dir`` on ``population`` (``customer_id``, ``is_fraud``)."""
    world = Path(world_dir)
    events = pd.read_parquet(world / "historical" / "events.parquet")
    customers = pd.read_parquet(world / "historical" / "customers.parquet")
    for frame in (events, customers):
        frame["customer_id"] = frame["customer_id"].astype(str)
    pop = population.drop_duplicates("customer_id").set_index("customer_id")
    stats = customer_statistics(events.loc[events["customer_id"].isin(pop.index)], customers, as_of_ms)
    stats = stats.reindex(pop.index)
    y = pop["is_fraud"].to_numpy(int)
    half = _halves(pop.index.to_numpy())
    rows: list[dict[str, Any]] = []
    encoded = {}
    for col in stats.columns:
        categorical = col in CATEGORICAL
        pr = score_field(stats[col], y, half, categorical=categorical)
        rows.append({"field": col, "kind": "category" if categorical else "number", "pr_auc": round(pr, 4)})
        encoded[col] = _category_scores(stats[col], y, half) if categorical else stats[col].to_numpy(float)
    rows.sort(key=lambda r: -r["pr_auc"])
    pairs: list[dict[str, Any]] = []
    top = [r["field"] for r in rows[:PAIR_CANDIDATES]]
    for a, b in itertools.combinations(top, 2):
        x = np.column_stack([encoded[a], encoded[b]])
        pairs.append({"fields": [a, b], "pr_auc": round(_pr_auc(y, _tree_scores(x, y, half)), 4)})
    pairs.sort(key=lambda r: -r["pr_auc"])

    orders = order_fields(world, pop.index)
    rng = np.random.default_rng(0)
    shuffled = [_pr_auc(y, rng.permutation(len(y)).astype(float)) for _ in range(ORDER_SHUFFLES)]
    order_limit = float(np.quantile(shuffled, 0.99))
    order_rows: list[dict[str, Any]] = []
    for col in orders.columns:
        x = orders[col].to_numpy(float)
        x = np.nan_to_num(x, nan=np.nanmax(x) + 1 if np.isfinite(x).any() else 0.0)
        pr = max(_pr_auc(y, x), _pr_auc(y, -x))
        order_rows.append({"field": col, "pr_auc": round(pr, 4), "limit": round(order_limit, 4)})

    label_rows = label_fields(world, as_of_ms)
    worst_field: dict[str, Any] = rows[0] if rows else {"field": None, "pr_auc": 0.0}
    worst_pair: dict[str, Any] = pairs[0] if pairs else {"fields": None, "pr_auc": 0.0}
    gives_away = (
        worst_field["pr_auc"] > FIELD_LIMIT
        or worst_pair["pr_auc"] > FIELD_LIMIT
        or any(r["pr_auc"] > r["limit"] for r in order_rows)
        or any(r["gain"] > FIELD_LIMIT for r in label_rows if r["field"] in BLOCK_FIELDS)
    )
    return {
        "population": int(len(y)),
        "fraudsters": int(y.sum()),
        "base_rate": round(float(y.mean()), 4) if len(y) else None,
        "field_limit": FIELD_LIMIT,
        "fields": rows,
        "pairs": pairs[:20],
        "orders": order_rows,
        "label_fields": label_rows,
        "max_field": worst_field,
        "max_pair": worst_pair,
        "gives_fraud_away": bool(gives_away),
    }


def label_fields(world: Path, as_of_ms: int) -> list[dict[str, Any]]:
    """Among the customers blocked by the cut-off: how well the block's source, its reason and the appeal's
    outcome tell a false block (a customer whose fraud had not started) from a true one. ``pr_auc`` of
    finding the false blocks, their share (``base_rate``) and ``gain`` = (PR-AUC - base) / (1 - base),
    which the check holds to ``FIELD_LIMIT``."""
    blocks = pd.read_parquet(world / "historical" / "blocks.parquet")
    appeals = pd.read_parquet(world / "historical" / "appeals.parquet")
    truth = pd.read_parquet(world / "truth" / "ground_truth.parquet")
    for frame in (blocks, appeals, truth):
        frame["customer_id"] = frame["customer_id"].astype(str)
    blocks["blocked_ms"] = series_epoch_ms(blocks["blocked_at"])
    blocks = blocks.loc[blocks["blocked_ms"] <= as_of_ms]
    last = blocks.sort_values("blocked_ms").drop_duplicates("customer_id", keep="last").set_index("customer_id")
    if len(last) < 20:
        return []
    t = truth.set_index("customer_id")
    start = series_epoch_ms(t["fraud_start_ts"])
    started = t["is_fraud_true"].reindex(last.index).fillna(False).astype(bool) & (
        start.reindex(last.index).to_numpy() <= last["blocked_ms"].to_numpy()
    )
    false_block = (~started).to_numpy().astype(int)
    if false_block.min() == false_block.max():
        return []
    half = _halves(last.index.to_numpy())
    outcome = appeals.drop_duplicates("customer_id", keep="last").set_index("customer_id")["outcome"]
    columns = {
        "block_source": last["source"],
        "block_reason": last["reason"],
        "appeal_outcome": last.index.map(outcome),
    }
    base = float(false_block.mean())
    rows = []
    for name, values in columns.items():
        pr = score_field(pd.Series(np.asarray(values)), false_block, half, categorical=True)
        rows.append(
            {
                "field": name,
                "pr_auc": round(pr, 4),
                "base_rate": round(base, 4),
                "gain": round((pr - base) / (1 - base), 4),
                "blocked": int(len(last)),
            }
        )
    return rows


__all__ = ["FIELD_LIMIT", "customer_statistics", "field_check", "score_field"]
