"""A data profile of a team's historical tables: what to check, and which settings fit, before training.

``fraudgraph profile --input DIR --out PROFILE_DIR`` reads the four tables of the input contract
(:mod:`etl.contract`, your own column names through ``etl.columns``) with pandas, only the columns it
needs, and writes ``profile.md``, ``profile.json`` and ``suggested-config.yaml``:

- time span of events, signups and blocks; events per customer;
- account age at block and the block -> appeal -> decision delays (p50 / p90); appeal rate and outcomes;
- identifier degree per kind (customers per device, IP, email, card: p50 / p90 / p99 / max);
- suggested ``labels.maturity_days`` and ``training.split`` for this data, each with its reason.

The suggestions follow two rules. Maturity must let most appeals arrive and be decided (the p90 of
block -> decision), yet leave fraud labels time to mature inside the validation split (at most half
of it). The split is read off where the labels are, not only how long the events run: of a few
shapes (test the last 10-25 %, validation the 25-35 % before it) of two spans, the events' and the
labels' (from the first block to the last event: ten years of sign-ups may hold every block in a
few days), it is the one whose training and validation splits can each label the most fraud
customers the way the training job labels them (a block matured by the split's end, within the
fraud window after a decision point).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from etl.contract import CONTRACT, TABLES, ColumnMap, check_input, renames, table_file
from fraudgraph.timeutil import DAY_MS, EPOCH_SECONDS_BELOW, iso_utc

IDENTIFIER_COLUMNS = {"device": "device_id", "ip": "ip", "email": "email", "card": "card_fingerprint"}


def read_table(source: str, table: str, columns: ColumnMap | None = None) -> pd.DataFrame:
    """One contract table in the contract's column names (absent optional columns as nulls)."""
    path = table_file(source, table)
    if path is None:
        raise FileNotFoundError(f"{source}: no {table}.parquet or {table}.csv (in it or under historical/)")
    wanted = renames(columns, table)
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        parts = (
            [path]
            if path.is_file()
            else sorted(p for p in path.iterdir() if p.name.endswith(".csv") or p.name.startswith("part-"))
        )
        frame = pd.concat([pd.read_csv(p, dtype=str) for p in parts], ignore_index=True)
    frame = frame.rename(columns=wanted)
    for col in CONTRACT[table]:
        if col.name not in frame:
            frame[col.name] = None
    return frame[[c.name for c in CONTRACT[table]]]


def timestamps_ms(values: pd.Series) -> pd.Series:
    """Epoch ms (float, NaN where unparseable) of ISO strings, datetimes or epoch seconds / ms."""
    if pd.api.types.is_datetime64_any_dtype(values):
        ts = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
        return ts.dt.as_unit("ms").astype("int64").where(ts.notna()).astype("float64")
    numbers = pd.to_numeric(values, errors="coerce")
    ms = numbers.where(numbers.abs() >= EPOCH_SECONDS_BELOW, numbers * 1000)
    text = values.where(numbers.isna()).astype(object)
    if text.notna().any():
        parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
        ms = ms.fillna(parsed.dt.as_unit("ms").astype("int64").where(parsed.notna()).astype("float64"))
    return ms.astype("float64")


def _q(values, qs=(50, 90)) -> dict[str, float | None]:
    arr = np.asarray(pd.Series(values).dropna(), dtype=float)
    return {f"p{q}": (round(float(np.percentile(arr, q)), 2) if len(arr) else None) for q in qs}


def _span(ms: pd.Series) -> dict[str, Any]:
    ms = ms.dropna()
    if ms.empty:
        return {"first": None, "last": None, "days": 0.0, "rows": 0}
    return {
        "first": iso_utc(int(ms.min())),
        "last": iso_utc(int(ms.max())),
        "days": round(float((ms.max() - ms.min()) / DAY_MS), 2),
        "rows": int(len(ms)),
    }


def profile_tables(source: str, columns: ColumnMap | None = None, *, min_positives: int = 20) -> dict[str, Any]:
    """The profile (see the module docstring) as a JSON-ready dict, with ``suggested`` settings."""
    check_input(source, columns)
    t = {name: read_table(source, name, columns) for name in TABLES}
    ev, cust, blocks, appeals = t["events"], t["customers"], t["blocks"], t["appeals"]
    ev_ms, signup_ms = timestamps_ms(ev["ts"]), timestamps_ms(cust["signup_ts"])
    block_ms = timestamps_ms(blocks["blocked_at"])
    contact_ms, resolved_ms = timestamps_ms(appeals["contacted_at"]), timestamps_ms(appeals["resolved_at"])

    signup_of = pd.Series(signup_ms.to_numpy(), index=cust["customer_id"].astype(str)).groupby(level=0).min()
    block_of = pd.Series(block_ms.to_numpy(), index=blocks["customer_id"].astype(str))
    age_at_block = (block_of - block_of.index.map(signup_of).to_numpy()) / DAY_MS
    first_block = block_of.groupby(level=0).min()
    appeal_cid = appeals["customer_id"].astype(str)
    to_contact = (contact_ms.to_numpy() - appeal_cid.map(first_block).to_numpy()) / DAY_MS
    to_decision = (resolved_ms.to_numpy() - contact_ms.to_numpy()) / DAY_MS
    outcomes = appeals["outcome"].fillna("pending").astype(str).value_counts().to_dict()

    per_customer = ev.groupby(ev["customer_id"].astype(str)).size()
    degrees = {}
    for kind, col in IDENTIFIER_COLUMNS.items():
        pairs = ev.loc[ev[col].notna(), ["customer_id", col]].drop_duplicates()
        deg = pairs.groupby(col).size()
        degrees[kind] = {
            "identifiers": int(len(deg)),
            **_q(deg, (50, 90, 99)),
            "max": int(deg.max()) if len(deg) else 0,
        }

    profile: dict[str, Any] = {
        "input": source,
        "rows": {name: int(len(frame)) for name, frame in t.items()},
        "span": {"events": _span(ev_ms), "signups": _span(signup_ms), "blocks": _span(block_ms)},
        "events_per_customer": {
            **_q(per_customer, (50, 90, 99)),
            "max": int(per_customer.max()) if len(per_customer) else 0,
            "customers": int(len(per_customer)),
        },
        "blocks": {"customers": int(block_of.index.nunique()), "account_age_at_block_days": _q(age_at_block)},
        "appeals": {
            "rate": round(appeal_cid.nunique() / max(block_of.index.nunique(), 1), 4),
            "outcomes": {k: int(v) for k, v in sorted(outcomes.items())},
            "block_to_contact_days": _q(to_contact),
            "contact_to_decision_days": _q(to_decision),
            "resolution_times": bool(pd.Series(resolved_ms).notna().any()),
        },
        "identifier_degree": degrees,
    }
    events = pd.DataFrame({"customer_id": ev["customer_id"].astype(str), "ts": ev_ms}).dropna()
    profile["suggested"] = suggest_settings(profile, events, first_block, min_positives)
    return profile


FRAUD_WINDOW_DAYS = 45.0  # training.examples.fraud_window_days' default: points this long before a block


def labelled_fraud_per_split(
    events: pd.DataFrame, first_block: pd.Series, t1: float, t2: float, maturity_days: float
) -> dict[str, int]:
    """Customers a split could label fraud (as :mod:`training.examples` does): a decision point in the
    split, a block matured by the split's end and at most the fraud window after that point."""
    out = {}
    for split, lo, hi in (("train", -np.inf, t1), ("val", t1, t2)):
        last = events.loc[(events["ts"] >= lo) & (events["ts"] < hi)].groupby("customer_id")["ts"].max()
        block = last.index.map(first_block).to_numpy(dtype=float)
        ok = (block <= hi - maturity_days * DAY_MS) & (block - FRAUD_WINDOW_DAYS * DAY_MS <= last.to_numpy())
        out[split] = int(np.nansum(ok))
    return out


def _appeal_maturity(contact90: float | None, decision90: float | None) -> tuple[float, str]:
    """``labels.maturity_days`` from the appeals' p90 times (block -> contact, contact -> decision), and why."""
    if contact90 is None:
        return 30.0, "no appeals in the data: the default"
    maturity = max(1.0, math.ceil(contact90 + (decision90 or 0.0)))
    return maturity, (
        f"p90 of block -> appeal contact ({contact90:g} d) + contact -> decision "
        f"({decision90 if decision90 is not None else 0:g} d): most appeals arrive and are decided before a "
        "block counts as fraud"
    )


def suggest_settings(
    profile: dict[str, Any], events: pd.DataFrame, first_block: pd.Series, min_positives: int
) -> dict[str, Any]:
    """``labels.maturity_days`` and ``training.split`` for this data, each with a reason.

    ``events``: customer_id and ts (epoch ms) of every event; ``first_block``: epoch ms per customer."""
    ap = profile["appeals"]
    contact90 = ap["block_to_contact_days"]["p90"]
    maturity, why = _appeal_maturity(contact90, ap["contact_to_decision_days"]["p90"])
    # the split: of a few shapes of the events' span and of the labels' span (first block to last event),
    # the one whose training and validation splits can label the most fraud
    span = profile["span"]["events"]["days"]
    end = float(events["ts"].max()) if len(events) else 0.0
    label_span = (end - float(first_block.min())) / DAY_MS if len(first_block) and len(events) else 0.0
    spans = [("events", span)] + ([("labels", label_span)] if 0 < label_span < span else [])
    best = None
    for basis, days in spans:
        for test_share, val_share in ((0.2, 0.35), (0.15, 0.3), (0.15, 0.25), (0.1, 0.25), (0.25, 0.35)):
            test_days, val_days = max(1.0, math.floor(days * test_share)), max(1.0, math.floor(days * val_share))
            m = min(maturity, max(1.0, math.floor(val_days / 2)))
            t2 = end - test_days * DAY_MS
            counts = labelled_fraud_per_split(events, first_block, t2 - val_days * DAY_MS, t2, m)
            if best is None or min(counts.values()) > min(best[3].values()):
                best = (test_days, val_days, m, counts, basis)
    assert best is not None  # the loop above tries at least one split
    test_days, val_days, capped, counts, basis = best
    if capped < maturity:
        why += (
            f"; capped at half the validation split ({capped:g} d) so that validation's blocks can mature "
            "(a shorter window admits some blocks that an appeal would later lift)"
        )
        maturity = capped
    basis_words = (
        f"events span {span:g} days"
        if basis == "events"
        else f"events span {span:g} days, the labels (first block to last event) {label_span:.1f}"
    )
    split_why = (
        f"{basis_words}: test the last {test_days:g}, validation the {val_days:g} before; "
        f"of the split shapes tried, this one labels the most fraud customers in its smaller split "
        f"(~{counts['train']} in training, ~{counts['val']} in validation at labels.maturity_days="
        f"{maturity:g})"
    )
    if min(counts.values()) < min_positives:
        split_why += (
            f"; below training.min_positives={min_positives}: training will refuse until longer event "
            "history (or more customers) is loaded"
        )
    return {
        "labels": {
            "maturity_days": maturity,
            "appeal_window_days": max(1.0, math.ceil(contact90 or 14.0)),
            "reason": why,
        },
        "training": {"split": {"val_days": val_days, "test_days": test_days}, "reason": split_why},
    }


def suggested_config(profile: dict[str, Any], columns: ColumnMap | None) -> str:
    """A YAML config with the suggested settings (and the column mapping in use), for ``--config``."""
    import yaml

    s = profile["suggested"]
    config: dict[str, Any] = {
        "labels": {k: v for k, v in s["labels"].items() if k != "reason"},
        "training": {"split": s["training"]["split"]},
    }
    if columns:
        config["etl"] = {"columns": {k: dict(v) for k, v in columns.items()}}
    head = (
        f"# suggested by fraudgraph profile for {profile['input']}\n# labels: {s['labels']['reason']}\n"
        f"# training: {s['training']['reason']}\n"
    )
    return head + yaml.safe_dump(config, sort_keys=False)


def render_profile(p: dict[str, Any]) -> str:
    sp, b, ap = p["span"], p["blocks"], p["appeals"]
    lines = [
        f"# Data profile of {p['input']}",
        "",
        "| table | rows | first | last | days |",
        "| --- | ---: | --- | --- | ---: |",
    ]
    for name, key in (("events", "events"), ("customers (signups)", "signups"), ("blocks", "blocks")):
        s = sp[key]
        lines.append(f"| {name} | {s['rows']:,} | {s['first'] or '-'} | {s['last'] or '-'} | {s['days']:g} |")
    e = p["events_per_customer"]
    lines += [
        "",
        f"- events per customer: p50 {e['p50']}, p90 {e['p90']}, p99 {e['p99']}, max {e['max']} "
        f"({e['customers']:,} customers with events)",
        f"- blocked customers: {b['customers']:,}; account age at block (days) p50 "
        f"{b['account_age_at_block_days']['p50']}, p90 {b['account_age_at_block_days']['p90']}",
        f"- appeal rate {ap['rate']:.1%} of blocked customers; outcomes "
        + ", ".join(f"{k} {v:,}" for k, v in ap["outcomes"].items())
        + f"; block -> contact (days) p50 {ap['block_to_contact_days']['p50']}, p90 "
        f"{ap['block_to_contact_days']['p90']}; contact -> decision p50 {ap['contact_to_decision_days']['p50']}, "
        f"p90 {ap['contact_to_decision_days']['p90']}"
        + ("" if ap["resolution_times"] else " (no resolution times: decided appeals count from contact)"),
        "",
        "| identifier | identifiers | customers each p50 | p90 | p99 | max |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {k} | {d['identifiers']:,} | {d['p50']} | {d['p90']} | {d['p99']} | {d['max']:,} |"
        for k, d in p["identifier_degree"].items()
    ]
    s = p["suggested"]
    lines += [
        "",
        "## Suggested settings",
        "",
        f"- `labels.maturity_days: {s['labels']['maturity_days']:g}`, `labels.appeal_window_days: "
        f"{s['labels']['appeal_window_days']:g}`: {s['labels']['reason']}.",
        f"- `training.split.val_days: {s['training']['split']['val_days']:g}`, `test_days: "
        f"{s['training']['split']['test_days']:g}`: {s['training']['reason']}.",
        "",
        "`suggested-config.yaml` holds them (and your column mapping): pass it with `--config`.",
    ]
    return "\n".join(lines) + "\n"


def write_profile(profile: dict[str, Any], out_dir: str | Path, columns: ColumnMap | None) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "profile.json").write_text(json.dumps(profile, indent=2))
    (out / "profile.md").write_text(render_profile(profile))
    (out / "suggested-config.yaml").write_text(suggested_config(profile, columns))
